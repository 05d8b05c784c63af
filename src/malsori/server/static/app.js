// malsori web page: upload (with progress), stream segments (server-sent events) with a
// determinate progress bar, elapsed time and ETA, cancel, play with highlight, edit in place,
// copy and download. No external resources: everything the page needs is served by malsori.
"use strict";
const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "malsori.apiKey";

// Whisper's languages (faster-whisper's tokenizer codes), with their English names.
const LANGUAGES = {
  af: "Afrikaans", am: "Amharic", ar: "Arabic", as: "Assamese", az: "Azerbaijani", ba: "Bashkir",
  be: "Belarusian", bg: "Bulgarian", bn: "Bengali", bo: "Tibetan", br: "Breton", bs: "Bosnian",
  ca: "Catalan", cs: "Czech", cy: "Welsh", da: "Danish", de: "German", el: "Greek",
  en: "English", es: "Spanish", et: "Estonian", eu: "Basque", fa: "Persian", fi: "Finnish",
  fo: "Faroese", fr: "French", gl: "Galician", gu: "Gujarati", ha: "Hausa", haw: "Hawaiian",
  he: "Hebrew", hi: "Hindi", hr: "Croatian", ht: "Haitian Creole", hu: "Hungarian",
  hy: "Armenian", id: "Indonesian", is: "Icelandic", it: "Italian", ja: "Japanese",
  jw: "Javanese", ka: "Georgian", kk: "Kazakh", km: "Khmer", kn: "Kannada", ko: "Korean (한국어)",
  la: "Latin", lb: "Luxembourgish", ln: "Lingala", lo: "Lao", lt: "Lithuanian", lv: "Latvian",
  mg: "Malagasy", mi: "Maori", mk: "Macedonian", ml: "Malayalam", mn: "Mongolian", mr: "Marathi",
  ms: "Malay", mt: "Maltese", my: "Myanmar (Burmese)", ne: "Nepali", nl: "Dutch",
  nn: "Norwegian Nynorsk", no: "Norwegian", oc: "Occitan", pa: "Punjabi", pl: "Polish",
  ps: "Pashto", pt: "Portuguese", ro: "Romanian", ru: "Russian", sa: "Sanskrit", sd: "Sindhi",
  si: "Sinhala", sk: "Slovak", sl: "Slovenian", sn: "Shona", so: "Somali", sq: "Albanian",
  sr: "Serbian", su: "Sundanese", sv: "Swedish", sw: "Swahili", ta: "Tamil", te: "Telugu",
  tg: "Tajik", th: "Thai", tk: "Turkmen", tl: "Tagalog", tr: "Turkish", tt: "Tatar",
  uk: "Ukrainian", ur: "Urdu", uz: "Uzbek", vi: "Vietnamese", yi: "Yiddish", yo: "Yoruba",
  yue: "Cantonese", zh: "Chinese",
};

const state = {
  file: null,
  segments: [],   // {id, start, end, text, cues: [{start, end, text}]}: edits write through
  language: "",
  duration: 0,    // seconds of audio, from the browser (loadedmetadata) or the server
  objectUrl: null,
  xhr: null,      // the running request, for Cancel
  timer: null,
  phase: "",      // "upload" | "transcribe" | ""
  started: 0,     // performance.now() when the phase began
  uploadStarted: 0,
  done: 0,        // seconds of audio transcribed so far (last segment's end)
  speakers: [],   // diarize: the server's labels (SPEAKER_1, ...) in order of first speech
  names: {},      // label -> the name shown (renamed in place on the page)
};

// Speaker chips: a colour per speaker (white text on each passes WCAG AA contrast).
const SPEAKER_COLOURS = ["#1f5fbf", "#b2331c", "#177245", "#7a3fb0", "#a35200", "#00727a", "#9c1f6e", "#4d5a12"];

function speakerName(label) { return (label && (state.names[label] || label)) || ""; }

// --- small helpers ---------------------------------------------------------------------------

function setStatus(text) { $("status").textContent = text; }
function showError(text) { const e = $("error"); e.textContent = text; e.hidden = !text; }
function setTiming(text) { const t = $("timing"); t.textContent = text; t.hidden = !text; }
// What the server had to do to read the file (damaged packets, gaps, inverted stereo):
// the done event's `warnings`, one line each, as text (never HTML).
function showNotice(lines) {
  const n = $("notice");
  const list = Array.isArray(lines) ? lines.filter((l) => typeof l === "string" && l) : [];
  n.replaceChildren(...list.map((l) => { const p = document.createElement("p"); p.textContent = `Note: ${l}`; return p; }));
  n.hidden = !list.length;
}

function apiKey() { return $("apikey").value.trim(); }
function authHeaders() { const k = apiKey(); return k ? { Authorization: `Bearer ${k}` } : {}; }

// A clock for people: m:ss under an hour, h:mm:ss from an hour on (3725 s -> 1:02:05).
// `hours` forces the hour field, so every line of a long recording has the same shape.
function clock(seconds, hours = false) {
  const total = Math.max(0, Math.floor(seconds + 1e-6));
  const h = Math.floor(total / 3600), m = Math.floor(total / 60) % 60, s = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 || hours ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

// Subtitle time stamps: 01:02:05,250 (SRT) / 01:02:05.250 (VTT).
function stamp(seconds, sep) {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60, s = Math.floor(ms / 1000) % 60;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms % 1000, 3)}`;
}

function megabytes(bytes) { return (bytes / 1e6).toFixed(1); }
function count(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

// --- errors: what the server said, in words a user can act on --------------------------------

function serverMessage(text) {
  try { const body = JSON.parse(text); return body.error?.message || body.detail || ""; }
  catch { return ""; }
}

function httpError(status, text, retryAfter) {
  const said = serverMessage(text);
  switch (status) {
    case 401:
      return apiKey()
        ? "The server did not accept the API key (401). Check the key in the API key field and try again."
        : "This server needs an API key (401). Enter it in the API key field and try again.";
    case 403:
      return `The server refused this request (403 Forbidden)${said ? `: ${said}` : ""}. ` +
        "If you reach the server through a proxy or another address, its administrator must allow that address.";
    case 413:
      return `The file is too large for this server (413)${said ? `: ${said}` : ""}.`;
    case 429:
      return "The server is busy with other transcriptions (429). Try again " +
        (retryAfter ? `in ${retryAfter} s.` : "in a minute.");
    default:
      return said || `The server answered ${status}.`;
  }
}

// --- models, languages, API key ---------------------------------------------------------------

function fillLanguages() {
  const select = $("language");
  const entries = Object.entries(LANGUAGES).sort((a, b) => a[1].localeCompare(b[1], "en"));
  for (const [code, name] of entries) {
    const opt = document.createElement("option");
    opt.value = code; opt.textContent = name;
    if (code === "ko") opt.lang = "ko";
    select.appendChild(opt);
  }
}

async function loadModels() {
  const select = $("model");
  const previous = select.value;
  let names = [];
  try {
    const res = await fetch("/v1/models", { headers: authHeaders() });
    if (res.ok) {
      names = ((await res.json()).data || []).map((m) => m.id);
      if ($("error").dataset.source === "models") { showError(""); delete $("error").dataset.source; }
    } else {
      showError(httpError(res.status, await res.text(), res.headers.get("Retry-After")));
      $("error").dataset.source = "models";
      if (res.status === 401) $("apikey").setAttribute("aria-invalid", "true");
    }
  } catch (err) {
    showError(`Could not reach the server to list its models: ${err.message}`);
  }
  if (names.length) $("apikey").removeAttribute("aria-invalid");
  const options = names.length ? names : ["whisper-1"];
  select.replaceChildren(...options.map((name) => {
    const opt = document.createElement("option");
    opt.value = name; opt.textContent = name === "whisper-1" ? "server default" : name;
    return opt;
  }));
  if (options.includes(previous)) select.value = previous;
}

function updateTask() {
  const translate = $("task").value === "translate";
  $("language").disabled = translate;
  $("language-help").textContent = translate ? "Whisper detects the spoken language when translating." : "";
  $("go").textContent = translate ? "Translate" : "Transcribe";
}

// --- the transcript: lines, highlight, edits, rendering ---------------------------------------

function lines() {
  return state.segments.flatMap((s) => (s.cues && s.cues.length ? s.cues : [s]));
}

function needsHours() {
  const last = state.segments.length ? state.segments[state.segments.length - 1].end : 0;
  return Math.max(state.duration || 0, last) >= 3600;
}

function addSegment(seg) {
  const segment = { id: seg.id, start: seg.start, end: seg.end, text: seg.text || "", cues: (seg.cues || []).map((c) => ({ ...c })) };
  state.segments.push(segment);
  // Long batched windows arrive with their subtitle cues: list those, for a finer highlight.
  for (const line of segment.cues.length ? segment.cues : [segment]) {
    if (line.text.trim()) addLine(line, segment);
  }
  if ($("segments").children.length) $("result").hidden = false;
}

function addLine(line, segment) {
  const list = $("segments");
  const n = list.children.length + 1;
  const li = document.createElement("li");
  li.dataset.start = line.start;
  li.dataset.end = line.end;
  const time = document.createElement("button");
  time.type = "button";
  time.className = "stamp";
  time.dataset.start = line.start;
  time.textContent = clock(line.start, needsHours());
  time.setAttribute("aria-label", `Play from ${clock(line.start, needsHours())}`);
  time.addEventListener("click", () => seek(line.start));
  const text = document.createElement("span");
  text.className = "text";
  try { text.contentEditable = "plaintext-only"; } catch { text.contentEditable = "true"; }
  text.setAttribute("role", "textbox");
  text.setAttribute("aria-label", `Line ${n} text`);
  text.spellcheck = true;
  text.textContent = line.text.trim().replace(/\s*\n\s*/g, " ");  // a cue's two rows, as one line
  text.addEventListener("input", () => editLine(line, segment, text));
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.isComposing) {  // (not while a Korean IME is composing)  // one line stays one line: Enter moves on, like a spreadsheet
      e.preventDefault();
      const next = li.nextElementSibling?.querySelector(".text");
      if (next) next.focus(); else text.blur();
    }
  });
  const speaker = line.speaker || segment.speaker;
  if (speaker) li.append(time, speakerChip(speaker), text);
  else li.append(time, text);
  list.appendChild(li);
}

// A speaker's name before each of its lines; editing one renames the speaker everywhere.
function speakerChip(label) {
  const chip = document.createElement("span");
  chip.className = "speaker";
  chip.dataset.speaker = label;
  const index = Math.max(0, state.speakers.indexOf(label));
  chip.style.background = SPEAKER_COLOURS[index % SPEAKER_COLOURS.length];
  try { chip.contentEditable = "plaintext-only"; } catch { chip.contentEditable = "true"; }
  chip.setAttribute("role", "textbox");
  chip.setAttribute("aria-label", `Name of ${label}`);
  chip.spellcheck = false;
  chip.textContent = speakerName(label);
  chip.addEventListener("input", () => {
    state.names[label] = chip.textContent.replace(/\s+/g, " ").trim() || label;
    for (const other of $("segments").querySelectorAll(".speaker")) {
      if (other !== chip && other.dataset.speaker === label) other.textContent = state.names[label];
    }
  });
  chip.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.isComposing) { e.preventDefault(); chip.blur(); }
  });
  chip.addEventListener("blur", () => { chip.textContent = speakerName(label); });
  return chip;
}

// The done event of a diarized transcript: speakers, and segments with theirs. Lines that did
// not come from the final cues (the user edited first) take the speaker of the segment
// holding their middle; the list is drawn again with the names.
function adoptSpeakers(speakers, segments) {
  state.speakers = speakers;
  for (const label of speakers) state.names[label] = state.names[label] || label;
  const who = (t) => {
    let found = "";
    for (const s of segments || []) if (s.start <= t) found = s.speaker;
    return found;
  };
  for (const s of state.segments) {
    s.speaker = s.speaker || who((s.start + s.end) / 2);
    for (const c of s.cues || []) c.speaker = c.speaker || who((c.start + c.end) / 2);
  }
  $("segments").replaceChildren();
  for (const s of state.segments) {
    for (const line of s.cues && s.cues.length ? s.cues : [s]) if (line.text.trim()) addLine(line, s);
  }
}

// The streamed cues are cut segment by segment; the done event brings the cues cut over the
// whole transcript (exactly the CLI's srt/vtt). Each goes to the segment holding its middle,
// and the list is drawn again, so lines, edits and downloads all follow the final cues.
// (Not after the user has edited a line: their edits win.)
function adoptFinalCues(cues) {
  if (!state.segments.length) return;
  for (const s of state.segments) s.cues = [];
  for (const c of cues) {
    const mid = (c.start + c.end) / 2;
    let owner = state.segments[0];
    for (const s of state.segments) if (s.start <= mid) owner = s;
    owner.cues.push({ start: c.start, end: c.end, text: c.text, ...(c.speaker ? { speaker: c.speaker } : {}) });
  }
  for (const s of state.segments) {  // a segment left without cues lent its words to others
    s.text = s.cues.length ? " " + s.cues.map((c) => c.text.trim()).join(" ") : "";
  }
  $("segments").replaceChildren();
  for (const s of state.segments) for (const c of s.cues) if (c.text.trim()) addLine(c, s);
}

function editLine(line, segment, el) {
  line.text = el.textContent.replace(/\s*\n\s*/g, " ");
  if (line !== segment) segment.text = " " + segment.cues.map((c) => c.text.trim()).filter(Boolean).join(" ");
  state.edited = true;
}

function restamp() {  // the duration became known after lines were listed: same shape for all
  const hours = needsHours();
  for (const b of $("segments").querySelectorAll(".stamp")) {
    b.textContent = clock(Number(b.dataset.start), hours);
    b.setAttribute("aria-label", `Play from ${b.textContent}`);
  }
}

function seek(start) {
  const p = $("player");
  p.currentTime = start;
  p.play().catch(() => {});
}

function highlight() {
  const t = $("player").currentTime;
  const editing = $("segments").contains(document.activeElement);
  for (const li of $("segments").children) {
    const on = t >= Number(li.dataset.start) && t < Number(li.dataset.end);
    if (on !== li.classList.contains("current")) {
      li.classList.toggle("current", on);
      if (on && !editing) li.scrollIntoView({ block: "nearest" });
    }
  }
}

function lineSpeaker(line) {  // the shown name of a listed line's speaker ("" when none)
  if (line.speaker) return speakerName(line.speaker);
  const owner = state.segments.find((s) => s === line || (s.cues || []).includes(line));
  return speakerName(owner && owner.speaker);
}

function plainText() {  // what the page shows: one line per listed line, with the edits
  return lines().filter((s) => s.text.trim()).map((s) => {
    const who = lineSpeaker(s);
    return (who ? `[${who}] ` : "") + s.text.trim().replace(/\s*\n\s*/g, " ");
  }).join("\n") + "\n";
}

function render(format) {
  const segs = state.segments.filter((s) => s.text.trim());
  if (format === "txt") return plainText();
  if (format === "json") {
    return JSON.stringify({
      text: segs.map((s) => s.text.trim()).join(" "),
      language: state.language,
      duration: state.duration || undefined,
      ...(state.speakers.length ? { speakers: state.speakers.map(speakerName) } : {}),
      segments: segs.map((s) => (s.speaker ? {
        ...s,
        speaker: speakerName(s.speaker),
        cues: (s.cues || []).map((c) => (c.speaker ? { ...c, speaker: speakerName(c.speaker) } : c)),
      } : s)),
    }, null, 2) + "\n";
  }
  const subs = lines().filter((s) => s.text.trim());
  const sep = format === "srt" ? "," : ".";
  const cues = subs.map((s, i) => {
    const range = `${stamp(s.start, sep)} --> ${stamp(s.end, sep)}`;
    const who = lineSpeaker(s);
    if (format === "srt") return `${i + 1}\n${range}\n${who ? `[${who}] ` : ""}${s.text.trim()}\n`;
    return `${range}\n${who ? `<v ${who}>` : ""}${s.text.trim()}\n`;
  });
  return (format === "vtt" ? "WEBVTT\n\n" : "") + cues.join("\n");
}

// --- progress: upload %, then the server's own progress (last segment end / duration) ---------

function startPhase(phase) {
  state.phase = phase;
  state.started = performance.now();
  tick();
}

function tick() {
  const bar = $("progress");
  const elapsed = (performance.now() - state.started) / 1000;
  if (state.phase === "upload") return;  // upload progress is driven by its own events
  if (state.phase !== "transcribe") return;
  const parts = [`Elapsed ${clock(elapsed)}`];
  if (state.duration > 0 && state.done > 0) {
    const fraction = Math.min(1, state.done / state.duration);
    bar.max = 1; bar.value = fraction;
    parts.unshift(`${clock(state.done, needsHours())} of ${clock(state.duration, needsHours())} (${Math.round(fraction * 100)}%)`);
    const left = (elapsed * (state.duration - state.done)) / state.done;
    parts.push(`about ${clock(left)} left`);
  } else if (state.done > 0) {
    parts.unshift(`${clock(state.done)} of audio transcribed`);
  } else {
    bar.removeAttribute("value");  // nothing decoded yet: indeterminate
  }
  setTiming(parts.join(" · "));
}

function onUploadProgress(e) {
  if (!e.lengthComputable) return;
  const bar = $("progress");
  bar.max = 1; bar.value = e.loaded / e.total;
  const secs = (performance.now() - state.uploadStarted) / 1000;
  setTiming(`Uploading ${Math.round((100 * e.loaded) / e.total)}% · ${megabytes(e.loaded)} of ${megabytes(e.total)} MB · elapsed ${clock(secs)}`);
}

function readDuration() {
  // The audio's length, read by the browser from the file itself (no upload needed).
  state.duration = 0;
  const probe = document.createElement("audio");
  probe.preload = "metadata";
  probe.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(probe.duration) && probe.duration > 0) {
      state.duration = probe.duration;
      restamp();
    }
    probe.removeAttribute("src"); probe.load();
  }, { once: true });
  probe.src = state.objectUrl;
}

// --- the request ------------------------------------------------------------------------------

function resetResult() {
  state.segments = []; state.language = ""; state.done = 0; state.edited = false;
  state.speakers = []; state.names = {};
  $("segments").replaceChildren();
  showNotice([]);
  $("result").hidden = true;
  const p = $("player");
  p.pause(); p.removeAttribute("src"); p.load();
}

function finish(ok) {
  clearInterval(state.timer); state.timer = null;
  state.xhr = null; state.phase = "";
  const lost = document.activeElement === $("cancel") || document.activeElement === document.body;
  $("progress").hidden = true;
  $("go").disabled = false;
  $("cancel").hidden = true;
  if (!ok && !$("segments").children.length) {
    resetResult();  // nothing to show: no empty player, no stale bar
    setTiming("");
  }
  if (lost) (ok && !$("result").hidden ? $("copy") : $("go")).focus();
}

function handleEvent(ev) {
  if (ev.type === "transcript.text.delta" && ev.segment) {
    addSegment(ev.segment);
    state.done = Math.max(state.done, ev.segment.end || 0);
    setStatus(`Transcribing… ${count($("segments").children.length, "line")} so far.`);
    tick();
  } else if (ev.type === "transcript.text.done") {
    state.language = ev.language || state.language;
    if (Array.isArray(ev.cues) && !state.edited) adoptFinalCues(ev.cues);
    if (Array.isArray(ev.speakers) && ev.speakers.length) adoptSpeakers(ev.speakers, ev.segments);
    if (ev.duration) { state.duration = ev.duration; restamp(); }
    showNotice(ev.warnings);
    return "done";
  } else if (ev.type === "error") {
    showError(ev.error?.message || ev.message || "The transcription failed on the server.");
    return "error";
  }
  return "";
}

function startRequest(event) {
  event.preventDefault();
  if (state.xhr) return;
  showError("");
  if (!state.file) { showError("Choose an audio or video file first."); $("file").focus(); return; }
  resetResult(); setTiming("");
  const translate = $("task").value === "translate";
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(state.file);
  readDuration();
  $("player").src = state.objectUrl;

  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("model", $("model").value || "whisper-1");
  if (!translate && $("language").value) form.append("language", $("language").value);
  form.append("stream", "true");
  // verbose_json: a server that answers without streaming still gives segments and times.
  form.append("response_format", "verbose_json");
  form.append("timestamp_granularities[]", "word");  // lets the server cut long windows into cues
  form.append("timestamp_granularities[]", "segment");
  if (!translate && $("diarize").checked) form.append("diarize", "true");  // who spoke when

  const xhr = new XMLHttpRequest();
  state.xhr = xhr;
  xhr.open("POST", translate ? "/v1/audio/translations" : "/v1/audio/transcriptions");
  for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
  let seen = 0, buffer = "", outcome = "", streaming = false;
  const t0 = performance.now();

  const pump = () => {  // parse the server-sent events that arrived so far
    const text = xhr.responseText;
    buffer += text.slice(seen); seen = text.length;
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const data = chunk.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (!data || data === "[DONE]") continue;
      try { outcome = handleEvent(JSON.parse(data)) || outcome; } catch { /* a partial or foreign line */ }
    }
  };

  xhr.upload.onloadstart = () => { state.uploadStarted = performance.now(); startPhase("upload"); };
  xhr.upload.onprogress = onUploadProgress;
  xhr.upload.onload = () => {
    setStatus(`${translate ? "Translating" : "Transcribing"}… the server is working on it.`);
    startPhase("transcribe");
  };
  xhr.onreadystatechange = () => {
    if (xhr.readyState === XMLHttpRequest.HEADERS_RECEIVED) {
      streaming = xhr.status === 200 && (xhr.getResponseHeader("Content-Type") || "").includes("text/event-stream");
      if (state.phase !== "transcribe" && xhr.status === 200) startPhase("transcribe");
    }
  };
  xhr.onprogress = () => { if (streaming) pump(); };
  xhr.onload = () => {
    const secs = (performance.now() - t0) / 1000;
    if (xhr.status !== 200) {
      showError(httpError(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
      if (xhr.status === 401) { $("apikey").setAttribute("aria-invalid", "true"); }
      setStatus("Failed.");
      finish(false);
      return;
    }
    if (streaming) {
      pump();
    } else {  // a plain JSON answer (verbose_json): the whole transcript at once
      try {
        const body = JSON.parse(xhr.responseText);
        for (const seg of body.segments || [{ start: 0, end: body.duration || 0, text: body.text || "" }]) addSegment(seg);
        state.language = body.language || "";
        if (body.duration) { state.duration = body.duration; restamp(); }
        outcome = "done";
      } catch {
        showError("The server's answer could not be read.");
        outcome = "error";
      }
    }
    if (outcome === "done") {
      $("progress").max = 1; $("progress").value = 1;
      const audio = state.duration ? `${clock(state.duration, needsHours())} of audio in ${clock(secs)}` : `in ${clock(secs)}`;
      const speed = state.duration && secs > 0 ? ` (${(state.duration / secs).toFixed(1)}× real time)` : "";
      setStatus(`Done: ${count($("segments").children.length, "line")}, language ${state.language || "?"}, ${audio}${speed}.`);
      setTiming("");
      finish(true);
    } else {
      if (outcome !== "error") showError("The connection ended before the transcript was complete.");
      setStatus("Failed.");
      finish(false);
    }
  };
  xhr.onerror = () => {
    const uploading = state.phase === "upload";
    showError(uploading
      ? "The upload was interrupted. The server may have refused the file (too large?) or stopped; try again."
      : "Lost the connection to the server.");
    setStatus("Failed.");
    finish(false);
  };
  xhr.onabort = () => {
    setStatus(state.segments.length
      ? `Cancelled. Kept the ${count($("segments").children.length, "line")} received so far.`
      : "Cancelled.");
    finish(false);
  };

  $("go").disabled = true;
  $("cancel").hidden = false;
  const bar = $("progress"); bar.hidden = false; bar.max = 1; bar.value = 0;
  setStatus(`Uploading ${state.file.name}…`);
  state.timer = setInterval(tick, 1000);
  xhr.send(form);
  $("cancel").focus();  // the button to reach now; Escape works too
}

function cancel() {
  if (!state.xhr) return;
  state.xhr.abort();  // the server stops the job when its client goes away
  $("go").focus();
}

// --- copy and download ------------------------------------------------------------------------

async function copyText() {
  const text = plainText();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No async clipboard (plain http from another machine): the old way.
    const area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.className = "visually-hidden";
    document.body.appendChild(area); area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) { showError("Could not copy: select the lines and press Ctrl+C instead."); return; }
  }
  setStatus(`Copied ${count($("segments").children.length, "line")} to the clipboard.`);
}

function download() {
  const format = $("format").value;
  const types = { srt: "application/x-subrip", vtt: "text/vtt", txt: "text/plain", json: "application/json" };
  const blob = new Blob([render(format)], { type: `${types[format]};charset=utf-8` });
  const a = $("download-link");
  if (a.href) URL.revokeObjectURL(a.href);
  a.href = URL.createObjectURL(blob);
  const stem = (state.file?.name || "transcript").replace(/\.[^.]+$/, "");
  a.download = `${stem}.${format}`;
  a.click();
}

// --- wiring -----------------------------------------------------------------------------------

function chooseFile(file) {
  state.file = file || null;
  $("filename").textContent = file ? `${file.name} (${megabytes(file.size)} MB)` : "";
  showError("");
}

$("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); chooseFile(e.dataTransfer.files[0]); });
$("form").addEventListener("submit", startRequest);
$("cancel").addEventListener("click", cancel);
document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.xhr) { e.preventDefault(); cancel(); } });
$("task").addEventListener("change", updateTask);
$("player").addEventListener("timeupdate", highlight);
$("copy").addEventListener("click", copyText);
$("download").addEventListener("click", download);
$("apikey").value = sessionStorage.getItem(KEY_STORAGE) || "";
$("apikey").addEventListener("change", () => {
  const k = apiKey();
  if (k) sessionStorage.setItem(KEY_STORAGE, k); else sessionStorage.removeItem(KEY_STORAGE);
  loadModels();
});
fillLanguages();
updateTask();
loadModels();
