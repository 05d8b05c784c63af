// malsori web page: upload, stream segments (server-sent events), play with highlight, download.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { file: null, segments: [], language: "", objectUrl: null };

function setStatus(text) { $("status").textContent = text; }
function showError(text) { const e = $("error"); e.textContent = text; e.hidden = !text; }

function chooseFile(file) {
  state.file = file || null;
  $("filename").textContent = file ? `${file.name} (${(file.size / 1e6).toFixed(1)} MB)` : "";
  showError("");
}

async function loadModels() {
  const select = $("model");
  try {
    const res = await fetch("/v1/models");
    const body = await res.json();
    const names = (body.data || []).map((m) => m.id);
    for (const name of names.length ? names : ["whisper-1"]) {
      const opt = document.createElement("option");
      opt.value = name; opt.textContent = name; select.appendChild(opt);
    }
  } catch (err) {
    const opt = document.createElement("option");
    opt.value = "whisper-1"; opt.textContent = "default"; select.appendChild(opt);
  }
}

function stamp(seconds, sep) {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60, s = Math.floor(ms / 1000) % 60;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms % 1000, 3)}`;
}

function render(format) {
  const segs = state.segments.filter((s) => s.text.trim());
  const subs = segs.flatMap((s) => (s.cues && s.cues.length ? s.cues : [s]));
  if (format === "txt") return segs.map((s) => s.text.trim()).join("\n") + "\n";
  if (format === "json") return JSON.stringify({ text: segs.map((s) => s.text).join("").trim(), language: state.language, segments: segs }, null, 2);
  const cues = subs.map((s, i) => {
    const range = `${stamp(s.start, format === "srt" ? "," : ".")} --> ${stamp(s.end, format === "srt" ? "," : ".")}`;
    return format === "srt" ? `${i + 1}\n${range}\n${s.text.trim()}\n` : `${range}\n${s.text.trim()}\n`;
  });
  return (format === "vtt" ? "WEBVTT\n\n" : "") + cues.join("\n");
}

function addSegment(seg) {
  state.segments.push(seg);
  // Long batched windows arrive with their subtitle cues: list those, for a finer highlight.
  for (const cue of seg.cues && seg.cues.length ? seg.cues : [seg]) addLine(cue);
  $("result").hidden = false;
}

function addLine(seg) {
  const li = document.createElement("li");
  li.tabIndex = 0;
  li.dataset.start = seg.start;
  li.dataset.end = seg.end;
  li.innerHTML = `<time>${stamp(seg.start, ".").slice(3, 8)}</time>`;
  li.append(document.createTextNode(seg.text.trim()));
  const seek = () => { const p = $("player"); p.currentTime = seg.start; p.play().catch(() => {}); };
  li.addEventListener("click", seek);
  li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); seek(); } });
  $("segments").appendChild(li);
}

function highlight() {
  const t = $("player").currentTime;
  for (const li of $("segments").children) {
    const on = t >= Number(li.dataset.start) && t < Number(li.dataset.end);
    if (on !== li.classList.contains("current")) {
      li.classList.toggle("current", on);
      if (on) li.scrollIntoView({ block: "nearest" });
    }
  }
}

async function errorMessage(res) {
  try { const body = await res.json(); return body.error?.message || res.statusText; }
  catch { return `${res.status} ${res.statusText}`; }
}

async function transcribe(event) {
  event.preventDefault();
  showError("");
  if (!state.file) { showError("Choose an audio or video file first."); $("drop").focus(); return; }
  state.segments = []; state.language = "";
  $("segments").replaceChildren();
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(state.file);
  $("player").src = state.objectUrl;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("model", $("model").value || "whisper-1");
  if ($("language").value) form.append("language", $("language").value);
  form.append("stream", "true");
  form.append("timestamp_granularities[]", "word");  // lets the server cut long windows into cues
  $("go").disabled = true;
  const bar = $("progress"); bar.hidden = false; bar.removeAttribute("value");
  setStatus("Uploading and transcribing…");
  try {
    const res = await fetch("/v1/audio/transcriptions", { method: "POST", body: form });
    if (!res.ok) { showError(await errorMessage(res)); setStatus(""); return; }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", duration = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        const data = chunk.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
        if (!data) continue;
        const ev = JSON.parse(data);
        if (ev.type === "transcript.text.delta" && ev.segment) {
          addSegment(ev.segment);
          duration = Math.max(duration, $("player").duration || 0);
          if (duration) { bar.max = duration; bar.value = ev.segment.end; }
          setStatus(`Transcribed ${ev.segment.end.toFixed(0)} s…`);
        } else if (ev.type === "transcript.text.done") {
          state.language = ev.language || "";
          bar.max = 1; bar.value = 1;
          setStatus(`Done: ${$("segments").children.length} lines, language ${state.language || "?"}.`);
        } else if (ev.type === "error") {
          showError(ev.error?.message || "transcription failed");
        }
      }
    }
  } catch (err) {
    showError(`Could not reach the server: ${err.message}`);
    setStatus("");
  } finally {
    $("go").disabled = false;
  }
}

function download() {
  const format = $("format").value;
  const types = { srt: "application/x-subrip", vtt: "text/vtt", txt: "text/plain", json: "application/json" };
  const blob = new Blob([render(format)], { type: `${types[format]};charset=utf-8` });
  const a = $("download-link");
  a.href = URL.createObjectURL(blob);
  const stem = (state.file?.name || "transcript").replace(/\.[^.]+$/, "");
  a.download = `${stem}.${format}`;
  a.click();
}

$("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); chooseFile(e.dataTransfer.files[0]); });
$("form").addEventListener("submit", transcribe);
$("player").addEventListener("timeupdate", highlight);
$("download").addEventListener("click", download);
loadModels();
