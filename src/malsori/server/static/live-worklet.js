// AudioWorklet for the page's Record button: the microphone's samples (any rate) -> 16 kHz
// mono PCM16, posted to the page in 100 ms blocks. Linear interpolation across blocks.
"use strict";
class Pcm16Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 16000;  // input samples per output sample
    this.t = 0;                      // next read position in the current block (may be -1..0)
    this.prev = 0;                   // the previous block's last sample
    this.block = new Int16Array(1600);
    this.n = 0;
  }

  push(x) {
    const v = Math.max(-1, Math.min(1, x));
    this.block[this.n++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    if (this.n === this.block.length) {
      this.port.postMessage(this.block.buffer, [this.block.buffer]);
      this.block = new Int16Array(1600);
      this.n = 0;
    }
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel && channel.length) {
      const len = channel.length;
      let t = this.t;
      while (t < len - 1) {
        const i = Math.floor(t), f = t - i;
        const a = i < 0 ? this.prev : channel[i], b = channel[i + 1];
        this.push(a + (b - a) * f);
        t += this.step;
      }
      this.t = t - len;
      this.prev = channel[len - 1];
    }
    return true;
  }
}
registerProcessor("pcm16-capture", Pcm16Capture);
