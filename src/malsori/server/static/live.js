// malsori web page, live part: the Record button. The microphone (getUserMedia) goes through
// an AudioWorklet (live-worklet.js: 16 kHz PCM16) to the server's /v1/realtime WebSocket
// (OpenAI's Realtime API, transcription mode); confirmed text and the dimmed partial show as
// people speak. Stop closes the last utterance; the transcript then lands in the result
// list with the page's copy and download buttons (app.js's addSegment, render, download).
"use strict";
(() => {
  const el = (id) => document.getElementById(id);
  const live = {
    ws: null, ctx: null, stream: null, node: null,
    items: new Map(),   // item_id -> {p, confirmed, partial, done, segment}
    order: [], pcm: [], samples: 0, language: "", open: 0, stopping: false, timer: null, stopTimer: null, t0: 0,
    failed: false,
  };

  function base64(bytes) {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }

  function item(id) {
    let it = live.items.get(id);
    if (!it) {
      const p = document.createElement("p");
      p.className = "live-line";
      const c = document.createElement("span"); c.className = "confirmed";
      const q = document.createElement("span"); q.className = "partial";
      p.append(c, q);
      el("live-text").appendChild(p);
      it = { p, c, q, confirmed: "", partial: "", done: false, segment: null };
      live.items.set(id, it); live.order.push(id);
    }
    return it;
  }

  function show(it) {
    it.c.textContent = it.confirmed.replace(/^\s+/, "");
    it.q.textContent = it.done ? "" : (it.confirmed ? it.partial : it.partial.replace(/^\s+/, ""));
    if (!it.confirmed && !it.partial && it.done) it.p.remove();
    el("live-text").scrollTop = el("live-text").scrollHeight;
  }

  function handle(ev) {
    switch (ev.type) {
      case "input_audio_buffer.speech_started":
        live.open += 1; item(ev.item_id); break;
      case "conversation.item.input_audio_transcription.delta": {
        const it = item(ev.item_id);
        it.confirmed += ev.delta || "";
        it.partial = ev.partial || "";
        show(it);
        if (ev.lag_ms > 3000) setTiming(`The server is ${(ev.lag_ms / 1000).toFixed(1)} s behind.`);
        break;
      }
      case "conversation.item.input_audio_transcription.completed": {
        const it = item(ev.item_id);
        live.open = Math.max(0, live.open - 1);
        it.done = true; it.confirmed = ev.transcript ? " " + ev.transcript : ""; it.partial = "";
        if (ev.language) live.language = ev.language;
        if (ev.transcript) it.segment = { start: ev.start || 0, end: ev.end || 0, text: " " + ev.transcript };
        show(it);
        if (live.stopping && live.open === 0) close();
        break;
      }
      case "error":
        // Stop's commit found nothing left: the pause before it had already closed the last
        // utterance, whose transcript may still be on its way (closing at once lost it)
        if (live.stopping && ev.error?.code === "input_audio_buffer_commit_empty") { if (live.open === 0) close(); break; }
        showError(ev.error?.message || "The live transcription failed on the server.");
        if (["too_many_sessions", "invalid_api_key", "model_not_found", "audio_too_long", "model_damaged"].includes(ev.error?.code)) {
          live.failed = true;
          if (ev.error.code === "invalid_api_key") el("apikey").setAttribute("aria-invalid", "true");
        }
        break;
      default: break;
    }
  }

  function elapsed() { return (performance.now() - live.t0) / 1000; }

  async function start() {
    if (live.ws) return;
    showError("");
    if (!navigator.mediaDevices?.getUserMedia || !window.AudioWorkletNode) {
      showError("This browser cannot record here: a microphone needs a secure page (https, or http://localhost).");
      return;
    }
    try {
      live.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    } catch (err) {
      showError(`Could not use the microphone: ${err.message || err.name}. Allow microphone access for this page and try again.`);
      return;
    }
    resetResult(); setTiming("");
    Object.assign(live, { items: new Map(), order: [], pcm: [], samples: 0, language: "", open: 0, stopping: false, failed: false });
    el("live-text").replaceChildren();
    el("live").hidden = false;
    live.ctx = new AudioContext();
    await live.ctx.audioWorklet.addModule("/static/live-worklet.js");
    const source = live.ctx.createMediaStreamSource(live.stream);
    live.node = new AudioWorkletNode(live.ctx, "pcm16-capture");
    source.connect(live.node);
    live.node.connect(live.ctx.destination);  // pulls the graph; the worklet outputs silence

    const model = el("model").value || "whisper-1";
    const protocols = ["realtime"];
    if (apiKey()) protocols.push("openai-insecure-api-key." + apiKey());
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/v1/realtime?intent=transcription&model=${encodeURIComponent(model)}`, protocols);
    live.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "session.update", session: { type: "transcription", audio: { input: {
        format: { type: "audio/pcm", rate: 16000 },
        transcription: { model, language: el("language").value || null },
      } } } }));
      live.node.port.onmessage = (e) => {
        const block = new Int16Array(e.data);
        live.pcm.push(block); live.samples += block.length;
        if (ws.readyState === WebSocket.OPEN && !live.stopping) {
          ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(new Uint8Array(e.data)) }));
        }
      };
      live.t0 = performance.now();
      setStatus("Recording… speak now.");
      live.timer = setInterval(() => { if (!live.stopping) setStatus(`Recording… ${clock(elapsed())}`); }, 1000);
    };
    ws.onmessage = (e) => {
      if (live.stopping) waitForServer();  // still working on what was said
      try { handle(JSON.parse(e.data)); } catch { /* not an event */ }
    };
    ws.onclose = () => { finish(); };
    el("record").hidden = true; el("go").disabled = true;
    el("stop").hidden = false; el("stop").focus();
    setStatus("Connecting…");
  }

  function stopCapture() {
    if (live.node) { live.node.port.onmessage = null; live.node.disconnect(); live.node = null; }
    if (live.stream) { for (const t of live.stream.getTracks()) t.stop(); live.stream = null; }
    if (live.ctx) { live.ctx.close().catch(() => {}); live.ctx = null; }
  }

  function stop() {
    if (!live.ws || live.stopping) return;
    live.stopping = true;
    stopCapture();
    setStatus("Finishing the last words…");
    if (live.ws.readyState === WebSocket.OPEN && live.open > 0) {
      live.ws.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
      waitForServer();
    } else {
      close();
    }
  }

  // Never wait forever for the server, but as long as it is still sending: a busy server
  // finishing a backlog took more than a fixed 15 s, and the last words were lost.
  function waitForServer() {
    clearTimeout(live.stopTimer);
    live.stopTimer = setTimeout(close, 15000);
  }

  function close() { if (live.ws && live.ws.readyState <= WebSocket.OPEN) live.ws.close(); }

  function wav() {  // the recording, for the player (16 kHz mono PCM16)
    const data = new Uint8Array(44 + live.samples * 2), view = new DataView(data.buffer);
    const text = (o, s) => { for (let i = 0; i < s.length; i++) data[o + i] = s.charCodeAt(i); };
    text(0, "RIFF"); view.setUint32(4, 36 + live.samples * 2, true); text(8, "WAVEfmt ");
    view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, 16000, true); view.setUint32(28, 32000, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, live.samples * 2, true);
    let o = 44;
    for (const b of live.pcm) { data.set(new Uint8Array(b.buffer), o); o += b.byteLength; }
    return new Blob([data], { type: "audio/wav" });
  }

  function finish() {
    if (!live.ws) return;
    const wasStopping = live.stopping;
    live.ws = null; live.stopping = false;
    clearInterval(live.timer); live.timer = null;
    clearTimeout(live.stopTimer); live.stopTimer = null;
    stopCapture();
    el("record").hidden = false; el("go").disabled = false; el("stop").hidden = true;
    const segments = live.order.map((id) => live.items.get(id).segment).filter(Boolean);
    segments.forEach((s, i) => addSegment({ id: i, ...s, cues: [] }));
    state.language = live.language;
    state.duration = live.samples / 16000;
    if (live.samples) {
      if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
      state.objectUrl = URL.createObjectURL(wav());
      el("player").src = state.objectUrl;
    }
    restamp();
    const n = el("segments").children.length;
    if (!wasStopping || live.failed) {
      if (!el("error").textContent) showError("The connection to the server ended.");
      setStatus("Failed.");
    } else {
      setStatus(`Done: ${count(n, "line")}, language ${state.language || "?"}, ${clock(state.duration)} recorded.`);
    }
    setTiming("");
    el(n ? "copy" : "record").focus();
  }

  el("record").addEventListener("click", start);
  el("stop").addEventListener("click", stop);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && live.ws) { e.preventDefault(); stop(); } });
})();
