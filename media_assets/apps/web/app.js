// The media_assets web page: plain JavaScript against the HTTP API (no build step).
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { query: "", selected: null, chapters: new Map(), session: null, view: "search" };

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = seconds - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

function heatColour(score, low, high) {
  if (score === null || score === undefined) return "#000";
  const t = high > low ? Math.max(0, Math.min(1, (score - low) / (high - low))) : 1;
  return `hsl(${Math.round(220 - 200 * t)}, 85%, ${Math.round(18 + 42 * t)}%)`;
}

function renderHeatmap(element, timeline, onSeek) {
  element.replaceChildren();
  element.hidden = !timeline;
  if (!timeline) return;
  const known = timeline.scores.filter((s) => s !== null);
  const low = Math.min(...known), high = Math.max(...known);
  timeline.scores.forEach((score, i) => {
    const cell = document.createElement("span");
    cell.style.background = heatColour(score, low, high);
    const start = i * timeline.bucket_s;
    cell.title = `${clock(start)}: ${score === null ? "no frame" : score.toFixed(3)}`;
    if (onSeek) cell.addEventListener("click", (event) => { event.stopPropagation(); onSeek(start); });
    element.append(cell);
  });
}

// Frame, shot and face ids are 63-bit integers, beyond what a JavaScript number holds exactly: read every
// integer of 16 or more digits as a string (ids are only ever put back into URLs and request bodies).
function parseJson(text) {
  return JSON.parse(text.replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,\}\]])/g, '$1"$2"'));
}

async function api(path, options) {
  const response = await fetch(path, options);
  const text = await response.text();
  let body = {};
  try { body = text ? parseJson(text) : {}; } catch (error) { body = { detail: text.slice(0, 200) }; }
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    if (response.status === 401) askForToken(detail);
    const error = new Error(`${response.status}: ${detail}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function filters() {
  const params = new URLSearchParams();
  if ($("#kind").value) params.set("kind", $("#kind").value);
  return params;
}

// why a fused moment matched: the words said (marked) and when, the line on screen, the visual similarity
function whyLines(reasons) {
  const div = document.createElement("div");
  div.className = "why";
  const shown = new Set();
  for (const reason of reasons) {
    // the words said can match twice (their meaning and their exact words): show them once
    const key = `${reason.source}|${reason.start_s}|${reason.marked}`;
    if (shown.has(key) || shown.size >= 3) continue;
    shown.add(key);
    const line = document.createElement("div");
    if (reason.modality === "visual") {
      line.className = "seen";
      line.textContent = `similarity ${(reason.similarity ?? 0).toFixed(3)}`;
    } else {
      line.className = reason.source === "screen_text" ? "shown" : "said";
      const time = document.createElement("span");
      time.className = "muted";
      time.textContent = `${clock(reason.start_s)} `;
      line.append(time, markedText(reason.marked));
    }
    div.append(line);
  }
  return div;
}

function markedText(marked) {
  // `marked` has the query's words as **word**: show them as <mark>, never as HTML
  const span = document.createElement("span");
  marked.split("**").forEach((part, i) => {
    if (i % 2) { const mark = document.createElement("mark"); mark.textContent = part; span.append(mark); }
    else span.append(part);
  });
  return span;
}

// -- chapters ----------------------------------------------------------------------------------------

// a file's table of contents (GET /chapters), asked for once per file while the page is open and shared by
// its cards and the preview; null when it has none (404). A failure is not kept, so it is asked again later.
function chaptersOf(mediaId) {
  const key = String(mediaId);
  if (!state.chapters.has(key)) {
    state.chapters.set(key, api(`/chapters/${key}`).catch((error) => {
      if (error.status === 404) return null;
      state.chapters.delete(key);
      throw error;
    }));
  }
  return state.chapters.get(key);
}

// the chapter playing at time t (chapters tile the file; the end of the last one belongs to it)
function chapterAt(chapters, t) {
  const last = chapters.length - 1;
  return chapters.findIndex((c, i) => t >= c.start_s && (t < c.end_s || (i === last && t <= c.end_s)));
}

const chapterLabel = (chapter, position) => `Ch. ${position + 1}${chapter.title ? ` · ${chapter.title}` : ""}`;

// where the page plays an item from: a fused moment from its strongest reason (the words said, the slide
// shown), else from its start (a moment, a chapter) or its frame
function playFrom(item) {
  const reason = Array.isArray(item.why) && item.why.length ? item.why[0].start_s : null;
  return reason ?? item.start_s ?? item.timestamp_s ?? 0;
}

// a text shown on at most two lines, with a "more" button when it is longer (see showExpanders)
function expandable(text, className) {
  const p = document.createElement("p");
  p.className = `clamped ${className}`;
  p.textContent = text;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "expand";
  button.textContent = "more";
  button.hidden = true;
  button.setAttribute("aria-expanded", "false");
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    const open = p.classList.toggle("open");
    button.textContent = open ? "less" : "more";
    button.setAttribute("aria-expanded", String(open));
  });
  return [p, button];
}

// once laid out: a "more" button only where the text does not fit on its two lines
function showExpanders(root) {
  for (const p of root.querySelectorAll(".clamped:not(.open)")) {
    p.nextElementSibling.hidden = p.scrollHeight <= p.clientHeight + 1;
  }
}

// the chapter a card's moment falls in, once the file's chapters are known
async function labelChapter(element, item) {
  let toc;
  try { toc = await chaptersOf(item.media_id); } catch (error) { return; } // the preview says why
  if (!toc || !toc.chapters.length) return;
  const position = chapterAt(toc.chapters, playFrom(item));
  if (position < 0) return;
  const chapter = toc.chapters[position];
  element.textContent = chapterLabel(chapter, position);
  element.title = `${clock(chapter.start_s)}–${clock(chapter.end_s)}${chapter.summary ? `: ${chapter.summary}` : ""}`;
  element.hidden = false;
}

// a chapter that matched a chapter search: its title and summary with the query's words marked
function chapterCard(hit) {
  const div = document.createElement("div");
  div.className = "card result chapter-hit";
  div.tabIndex = 0;
  div.innerHTML = `<img loading="lazy" alt=""><div class="meta"><span class="name"></span><span class="chapter-title"></span>
    <span class="row"><span class="time"></span><span class="similarity"></span></span></div>`;
  if (hit.thumbnail_url) div.querySelector("img").src = hit.thumbnail_url;  // the frame as the chapter starts
  else div.querySelector("img").classList.add("no-picture");
  div.querySelector(".name").textContent = hit.partition_key;
  const title = div.querySelector(".chapter-title");
  title.append(`Ch. ${hit.index + 1}${hit.title ? " · " : ""}`, markWords(hit.title || "", hit.why.matched));
  div.querySelector(".time").textContent = `${clock(hit.start_s)}–${clock(hit.end_s)}`;
  div.querySelector(".similarity").textContent = hit.similarity.toFixed(3);
  div.querySelector(".similarity").title = "similarity, 0..1, higher is better";
  const summary = document.createElement("p");
  summary.className = "summary";
  summary.append(markedText(hit.why.marked || hit.summary || ""));
  div.append(summary);
  // the preview marks the same words in the transcript
  const item = { ...hit, matched_words: hit.why.matched };
  div.addEventListener("click", () => openPreview(item, div));
  div.addEventListener("keydown", (event) => { if (event.key === "Enter") openPreview(item, div); });
  return div;
}

function card(item) {
  // item: a moment (start_s/end_s) or a frame hit (timestamp_s)
  const div = document.createElement("div");
  div.className = "card result";
  div.tabIndex = 0;
  const time = item.start_s !== undefined
    ? (item.kind === "image" ? "photo" : `${clock(item.start_s)}–${clock(item.end_s)}`)
    : (item.kind === "image" ? "photo" : clock(item.timestamp_s));
  div.innerHTML = `<img loading="lazy" alt=""><div class="meta"><span class="name"></span>
    <span class="row"><span class="time"></span><span class="similarity"></span></span>
    <span class="chapter" hidden></span></div>
    <div class="heatmap"></div><div class="actions"><button class="more" type="button">More like this</button>
    <span class="judge" hidden><button class="relevant" type="button" title="a good result for this query">✓ Good</button>
    <button class="not-relevant" type="button" title="not what this query asks for">✗ Not</button></span></div>`;
  if (item.thumbnail_url) div.querySelector("img").src = item.thumbnail_url;
  else div.querySelector("img").classList.add("no-picture");
  if (item.why) div.querySelector(".meta").after(whyLines(item.why));
  div.querySelector(".name").textContent = item.partition_key;
  div.querySelector(".time").textContent = time;
  div.querySelector(".similarity").textContent = item.similarity.toFixed(3);
  div.querySelector(".similarity").title = "similarity, 0..1, higher is better";
  renderHeatmap(div.querySelector(".heatmap"), item.timeline, null);
  if (item.kind !== "image") labelChapter(div.querySelector(".chapter"), item);
  div.addEventListener("click", () => openPreview(item, div));
  div.addEventListener("keydown", (event) => { if (event.key === "Enter") openPreview(item, div); });
  const frameId = item.best_frame_id ?? item.frame_id;
  if (frameId === null || frameId === undefined) div.querySelector(".actions").hidden = true;  // audio: no frame
  div.querySelector(".more").addEventListener("click", (event) => {
    event.stopPropagation();
    moreLikeThis(item.best_frame_id ?? item.frame_id);
  });
  if (state.query && canWrite()) {  // a text search: the result can be judged (a relevance feedback row)
    const query = state.query;
    div.querySelector(".judge").hidden = false;
    for (const [selector, relevant] of [[".relevant", true], [".not-relevant", false]]) {
      div.querySelector(selector).addEventListener("click", (event) => {
        event.stopPropagation();
        judge(div, query, item.best_frame_id ?? item.frame_id, relevant);
      });
    }
  }
  return div;
}

async function judge(element, query, frameId, relevant) {
  try {
    await api("/feedback/relevance", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: `{"query": ${JSON.stringify(query)}, "frame_id": ${frameId}, "relevant": ${relevant}}`,
    });
    element.classList.remove("judged-relevant", "judged-not-relevant");
    element.classList.add(relevant ? "judged-relevant" : "judged-not-relevant");
    $("#status").textContent = `noted: frame ${frameId} is ${relevant ? "" : "not "}a good result for “${query}”`;
  } catch (error) {
    $("#status").textContent = error.message;
  }
}

function showResults(items, label, render = card) {
  const grid = $("#results");
  grid.replaceChildren(...items.map((item) => render(item)));
  $("#status").textContent = items.length ? label : "no results";
}

async function searchText(query) {
  state.query = query;
  if ($("#mode").value === "chapters") return searchChapters(query);
  $("#status").textContent = "searching…";
  const params = filters();
  params.set("q", query);
  params.set("k", "24");
  params.set("mode", $("#mode").value);
  params.set("timeline_buckets", "48");
  try {
    const body = await api(`/search?${params}`);
    showResults(body.results, `${body.results.length} moments for “${query}”`);
  } catch (error) {
    $("#status").textContent = error.message;
  }
}

async function searchChapters(query) {
  $("#status").textContent = "searching…";
  const params = filters();
  params.set("q", query);
  params.set("k", "24");
  try {
    const body = await api(`/summaries?${params}`);
    showResults(body.results, `${body.results.length} chapters for “${query}”`, chapterCard);
  } catch (error) {
    $("#status").textContent = error.message;
  }
}

async function moreLikeThis(frameId) {
  state.query = "";
  $("#status").textContent = "searching…";
  try {
    const body = await api(`/similar/frame/${frameId}?k=24&${filters()}`);
    showResults(body.results, `${body.results.length} frames like frame ${frameId}`);
  } catch (error) {
    $("#status").textContent = error.message;
  }
}

async function searchImage(file) {
  state.query = "";
  $("#status").textContent = `searching with ${file.name}…`;
  const form = new FormData();
  form.append("file", file);
  try {
    const body = await api(`/search/image?k=24&${filters()}`, { method: "POST", body: form });
    showResults(body.results, `${body.results.length} frames like ${file.name}`);
  } catch (error) {
    $("#status").textContent = error.message;
  }
}

function openPreview(item, element) {
  document.querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
  element.classList.add("selected");
  state.selected = item;
  const start = playFrom(item);
  $("#preview").hidden = false;
  $("#preview-similar").hidden = (item.best_frame_id ?? item.frame_id ?? null) === null;  // audio, chapters
  $("#preview-title").textContent = item.partition_key;
  $("#preview-info").textContent = item.kind !== "image"
    ? `from ${clock(start)}${item.end_s !== undefined ? ` to ${clock(item.end_s)}` : ""} · similarity ${item.similarity.toFixed(3)}`
    : `photo · similarity ${item.similarity.toFixed(3)}`;
  const video = $("#preview-video"), image = $("#preview-image");
  if (item.kind !== "image") {
    image.hidden = true;
    video.hidden = false;
    const seek = () => { video.currentTime = start; video.play().catch(() => {}); };
    if (video.dataset.src === item.video_url && video.readyState >= 1) {
      seek();
    } else {
      video.dataset.src = item.video_url;
      video.src = item.video_url;
      video.addEventListener("loadedmetadata", seek, { once: true });
    }
    renderHeatmap($("#preview-timeline"), item.timeline, (t) => { video.currentTime = t; });
    loadChapters(item, video);
    loadTranscript(item, video);
  } else {
    video.pause();
    video.hidden = true;
    image.hidden = false;
    image.src = item.video_url;
    $("#preview-timeline").replaceChildren();
    $("#transcript").hidden = true;
    clearChapters(video);
  }
}

// the chapters under the player: the one playing is marked and follows playback, a click on one plays it
// from its start; the video element gets the same chapters as a WebVTT chapters track
function clearChapters(video) {
  const panel = $("#chapters");
  delete panel.dataset.mediaId;
  panel.hidden = true;
  $("#chapter-list").replaceChildren();
  $("#chapters-summary").replaceChildren();
  $("#chapters-count").textContent = "";
  $("#chapters-error").hidden = true;
  video.querySelectorAll("track[kind=chapters]").forEach((track) => track.remove());
}

async function loadChapters(item, video) {
  const panel = $("#chapters");
  const mediaId = String(item.media_id);
  if (panel.dataset.mediaId === mediaId) {
    followChapters(video);
    return;
  }
  clearChapters(video);
  panel.dataset.mediaId = mediaId;
  let toc;
  try {
    toc = await chaptersOf(mediaId);
  } catch (error) {
    if (panel.dataset.mediaId !== mediaId) return;
    delete panel.dataset.mediaId;  // asked again when the file is opened again
    $("#chapters-error").textContent = `no chapters: ${error.message}`;
    $("#chapters-error").hidden = false;
    panel.hidden = false;
    return;
  }
  // no chapters stored (404), or none for this file: no panel
  if (panel.dataset.mediaId !== mediaId || !toc || !toc.chapters.length) return;
  $("#chapters-count").textContent = `(${toc.chapters.length})`;
  if (toc.summary) $("#chapters-summary").replaceChildren(...expandable(toc.summary, "video-summary muted"));
  $("#chapter-list").replaceChildren(...toc.chapters.map((chapter, position) => {
    const li = document.createElement("li");
    li.tabIndex = 0;
    li.dataset.start = chapter.start_s;
    li.dataset.end = chapter.end_s;
    const head = document.createElement("div");
    head.className = "chapter-head";
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = `${clock(chapter.start_s)}–${clock(chapter.end_s)}`;
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = chapterLabel(chapter, position);
    head.append(time, title);
    li.append(head);
    if (chapter.summary) li.append(...expandable(chapter.summary, "summary"));
    const play = () => { video.currentTime = chapter.start_s; video.play().catch(() => {}); };
    li.addEventListener("click", play);
    li.addEventListener("keydown", (event) => { if (event.key === "Enter" && event.target === li) play(); });
    return li;
  }));
  const track = document.createElement("track");
  track.kind = "chapters";
  track.label = "Chapters";
  track.srclang = "en";
  track.default = true;
  track.src = `/chapters/${mediaId}?format=vtt`;
  video.append(track);
  track.track.mode = "hidden";  // load its cues for players that read them; browsers draw no chapters
  panel.hidden = false;
  showExpanders(panel);
  followChapters(video);
}

function followChapters(video) {
  const update = () => {
    const list = $("#chapter-list"), t = video.currentTime;
    const items = Array.from(list.children);
    const playing = chapterAt(items.map((li) => ({ start_s: Number(li.dataset.start), end_s: Number(li.dataset.end) })), t);
    items.forEach((li, i) => {
      li.classList.toggle("current", i === playing);
      if (i === playing) li.setAttribute("aria-current", "true");
      else li.removeAttribute("aria-current");
    });
    const current = items[playing];
    if (current && (current.offsetTop < list.scrollTop
        || current.offsetTop + current.offsetHeight > list.scrollTop + list.clientHeight)) {
      list.scrollTop = current.offsetTop;  // within the list only: the page does not jump
    }
  };
  if (!video.dataset.followsChapters) {
    video.addEventListener("timeupdate", update);
    video.addEventListener("seeked", update);
    video.dataset.followsChapters = "1";
  }
  update();
}

// the transcript beside the player: the line being said follows playback, a click on a line seeks there,
// and the words a search matched are marked
function markWords(text, words) {
  const span = document.createElement("span");
  if (!words || !words.length) { span.textContent = text; return span; }
  const pattern = new RegExp(`\\b(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "gi");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    span.append(text.slice(last, match.index));
    const mark = document.createElement("mark");
    mark.textContent = match[0];
    span.append(mark);
    last = match.index + match[0].length;
  }
  span.append(text.slice(last));
  return span;
}

async function loadTranscript(item, video) {
  const panel = $("#transcript"), list = $("#transcript-lines");
  const mediaId = String(item.media_id);
  if (panel.dataset.mediaId === mediaId && list.children.length) {
    highlightWords(item.matched_words);
    panel.hidden = false;  // hidden while a photo was open
    return;
  }
  panel.dataset.mediaId = mediaId;
  list.replaceChildren();
  panel.hidden = true;
  let body;
  try {
    body = await api(`/transcript/${mediaId}?format=json`);
  } catch (error) {
    return; // no transcript (never transcribed, or no speech): no panel
  }
  if (panel.dataset.mediaId !== mediaId || !body.segments || !body.segments.length) return;
  $("#transcript-source").textContent = body.source ? `(${body.source})` : "";
  for (const segment of body.segments) {
    const li = document.createElement("li");
    li.dataset.start = segment.start_s;
    li.dataset.end = segment.end_s;
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = clock(segment.start_s);
    const text = document.createElement("span");
    text.className = "text";
    text.dataset.text = segment.text;
    li.append(time, text);
    li.addEventListener("click", () => { video.currentTime = segment.start_s; video.play().catch(() => {}); });
    list.append(li);
  }
  highlightWords(item.matched_words);
  panel.hidden = false;
  followPlayback(video);
}

function highlightWords(words) {
  for (const text of $("#transcript-lines").querySelectorAll(".text")) {
    text.replaceChildren(markWords(text.dataset.text, words));
  }
}

function followPlayback(video) {
  const update = () => {
    const t = video.currentTime;
    let current = null;
    for (const li of $("#transcript-lines").children) {
      const on = t >= Number(li.dataset.start) && t < Number(li.dataset.end);
      li.classList.toggle("current", on);
      if (on) current = li;
    }
    if (current) current.scrollIntoView({ block: "nearest" });
  };
  if (!video.dataset.followsTranscript) {
    video.addEventListener("timeupdate", update);
    video.addEventListener("seeked", update);
    video.dataset.followsTranscript = "1";
  }
  update();
}

$("#preview-close").addEventListener("click", () => { $("#preview").hidden = true; $("#preview-video").pause(); });
$("#preview-similar").addEventListener("click", () => {
  if (state.selected) moreLikeThis(state.selected.best_frame_id ?? state.selected.frame_id);
});
$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = $("#query").value.trim();
  if (query) searchText(query);
  else $("#status").textContent = "type what you are looking for";
});
$("#kind").addEventListener("change", () => { if (state.query) searchText(state.query); });
$("#mode").addEventListener("change", () => { if (state.query) searchText(state.query); });

// search by dropping an image anywhere on the search view
let dragDepth = 0;
const isFileDrag = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
window.addEventListener("dragenter", (event) => { if (isFileDrag(event)) { dragDepth++; $("#drop-hint").hidden = false; } });
window.addEventListener("dragleave", (event) => { if (isFileDrag(event) && --dragDepth <= 0) { dragDepth = 0; $("#drop-hint").hidden = true; } });
window.addEventListener("dragover", (event) => { if (isFileDrag(event)) event.preventDefault(); });
window.addEventListener("drop", (event) => {
  if (!isFileDrag(event)) return;
  event.preventDefault();
  dragDepth = 0;
  $("#drop-hint").hidden = true;
  const file = event.dataTransfer.files[0];
  if (file) { showView("search"); searchImage(file); }
});

// -- clusters --------------------------------------------------------------------------------------

function image(url, className = "") {
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = "";
  img.src = url;
  if (className) img.className = className;
  return img;
}
const thumbnail = (frameId) => image(`/frame/${frameId}`);
const faceThumbnail = (faceId) => image(`/face/${faceId}`, "face");

// a card that accepts dropped members of one kind ("shot" onto scene clusters, "face" onto characters)
function dropTarget(div, memberKind, clusterId) {
  div.dataset.clusterId = clusterId;
  div.addEventListener("dragover", (event) => {
    if (!Array.from(event.dataTransfer.types).includes(`text/x-${memberKind}-id`)) return;
    event.preventDefault();
    div.classList.add("drop-target");
  });
  div.addEventListener("dragleave", () => div.classList.remove("drop-target"));
  div.addEventListener("drop", (event) => {
    const memberId = event.dataTransfer.getData(`text/x-${memberKind}-id`);
    if (!memberId) return;
    event.preventDefault();
    div.classList.remove("drop-target");
    pinMember(memberKind, memberId, clusterId);
  });
}

// a shot or face card that can be dragged onto a cluster
function memberCard(member, className) {
  const div = document.createElement("div");
  div.className = `card member ${className}`;
  div.draggable = canWrite();
  div.dataset.memberKind = member.member_kind;
  div.dataset.memberId = member.member_id;
  if (member.member_kind === "shot") div.dataset.shotId = member.member_id;
  div.append(member.member_kind === "face" ? faceThumbnail(member.member_id) : thumbnail(member.frame_id));
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.innerHTML = `<span class="name"></span><span class="row"><span class="time"></span><span class="similarity"></span></span>`;
  meta.querySelector(".name").textContent = member.partition_key;
  meta.querySelector(".time").textContent = member.start_s === null || member.start_s === undefined
    ? "" : `${clock(member.start_s)}–${clock(member.end_s)}`;
  if (member.similarity !== null && member.similarity !== undefined) {
    meta.querySelector(".similarity").textContent = (member.pinned ? "📌 " : "") + member.similarity.toFixed(3);
    meta.querySelector(".similarity").title = member.is_noise
      ? "similarity to the nearest cluster, 0..1" : "similarity to the cluster's centre, 0..1";
  }
  div.append(meta);
  div.addEventListener("dragstart", (event) => {
    event.dataTransfer.setData(`text/x-${member.member_kind}-id`, String(member.member_id));
    event.dataTransfer.setData("text/plain", String(member.member_id));
    event.dataTransfer.effectAllowed = "move";
  });
  return div;
}

function clusterCard(cluster, memberKind) {
  const div = document.createElement("div");
  div.className = `card cluster ${cluster.level}`;
  const thumbs = document.createElement("div");
  thumbs.className = "cluster-thumbs";
  thumbs.append(...(cluster.representative_frame_ids || []).slice(0, 4).map(thumbnail));
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.innerHTML = `<span class="name"></span><span class="row"><span class="size"></span><span class="videos"></span></span>`;
  meta.querySelector(".name").textContent = cluster.name || `${cluster.level === "scene" ? "scene" : "character"} ${cluster.cluster_id}`;
  meta.querySelector(".size").textContent = `${cluster.size} ${memberKind}s`;
  meta.querySelector(".videos").textContent = `${cluster.media_count} files`;
  div.append(thumbs, meta);
  dropTarget(div, memberKind, cluster.cluster_id);
  return div;
}

async function loadClusters() {
  $("#cluster-status").textContent = "loading…";
  try {
    const body = await api("/clusters");
    state.clusters = body.clusters;
    const scenes = body.clusters.filter((c) => c.level === "scene");
    $("#clusters").replaceChildren(...scenes.map((cluster) => {
      const div = clusterCard(cluster, "shot");
      div.addEventListener("click", () => openCluster(cluster.cluster_id));
      const characters = body.clusters.filter((c) => c.parent_id === cluster.cluster_id).length;
      if (characters) div.querySelector(".videos").textContent += ` · ${characters} character${characters === 1 ? "" : "s"}`;
      return div;
    }));
    const shots = body.noise.members.filter((m) => m.member_kind === "shot");
    setNoiseSize(shots.length);
    $("#noise").replaceChildren(...shots.map((member) => memberCard(member, "noise-shot")));
    $("#cluster-status").textContent = scenes.length ? "" : "no clusters yet (materialize clusters)";
    if (state.openCluster && scenes.some((c) => c.cluster_id === state.openCluster)) openCluster(state.openCluster);
    else $("#cluster-detail").hidden = true;
  } catch (error) {
    $("#cluster-status").textContent = error.message;
  }
}

// one scene cluster: its shots (drag one onto another scene to move it) and its characters (faces can be
// dragged between them)
async function openCluster(clusterId) {
  state.openCluster = clusterId;
  document.querySelectorAll(".card.cluster.selected").forEach((c) => c.classList.remove("selected"));
  document.querySelector(`#clusters .card.cluster[data-cluster-id="${clusterId}"]`)?.classList.add("selected");
  try {
    const detail = await api(`/clusters/${clusterId}`);
    $("#cluster-detail").hidden = false;
    $("#cluster-detail-title").textContent = `${detail.name || `scene ${detail.cluster_id}`}: ${detail.size} shots in ${detail.media_count} files`;
    $("#cluster-members").replaceChildren(...detail.members.map((member) => memberCard(member, "cluster-shot")));
    const characters = (state.clusters || []).filter((c) => c.parent_id === clusterId);
    const faces = await Promise.all(characters.map((c) => api(`/clusters/${c.cluster_id}`)));
    $("#cluster-characters-head").hidden = !characters.length;
    $("#cluster-characters").replaceChildren(...characters.map((character, i) => {
      const div = clusterCard(character, "face");
      const crops = div.querySelector(".cluster-thumbs");
      crops.replaceChildren(...faces[i].members.slice(0, 8).map((member) => {
        const face = memberCard(member, "character-face");
        face.querySelector(".meta").remove();
        return face;
      }));
      return div;
    }));
  } catch (error) {
    $("#cluster-status").textContent = error.message;
  }
}

function setNoiseSize(count) {
  $("#noise-size").textContent = `(${count} shot${count === 1 ? "" : "s"})`;
}

async function pinMember(memberKind, memberId, clusterId) {
  try {
    await api("/feedback/move", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: `{"member_kind": ${JSON.stringify(memberKind)}, "member_id": ${memberId}, "cluster_id": ${clusterId}}`,
    });
    const moved = document.querySelector(`.card.member[data-member-kind="${memberKind}"][data-member-id="${memberId}"]`);
    if (moved && !moved.closest(`[data-cluster-id="${clusterId}"]`)) moved.remove();
    setNoiseSize(document.querySelectorAll(".noise-shot").length);
    $("#cluster-status").textContent = `${memberKind} ${memberId} pinned to cluster ${clusterId}; it moves there at the next clustering`;
  } catch (error) {
    $("#cluster-status").textContent = error.message;
  }
}

// -- views -----------------------------------------------------------------------------------------

function showView(name) {
  state.view = name;
  if (!$("#login").hidden) return;  // shown once logged in
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${name}`; });
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === name));
  if (name === "clusters") loadClusters();
}
document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => showView(tab.dataset.view)));

// -- access ----------------------------------------------------------------------------------------

// who the page acts as (GET /session): a token's name and role, or an open server (no tokens). Only an editor
// judges results and drags pins; the server checks either way.
const canWrite = () => !state.session || state.session.role === "editor";

// the API answered 401: ask for a token, once; POST /login keeps it in an HttpOnly cookie the page never sees
function askForToken(message) {
  if (!$("#login").hidden) return;
  state.session = null;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = true; });
  $("#who").hidden = $("#logout").hidden = true;
  $("#health").textContent = "";
  $("#login-error").textContent = message && !message.startsWith("this server needs a token") ? message : "";
  $("#login").hidden = false;
  $("#login-token").focus();
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("#login-token").value.trim();
  if (!token) { $("#login-error").textContent = "paste your token"; return; }
  const response = await fetch("/login", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("#login-error").textContent = body.detail || `${response.status}`;
    return;
  }
  $("#login-token").value = "";
  $("#login-error").textContent = "";
  $("#login").hidden = true;
  showView(state.view);
  await start();
  if (state.query && state.view === "search") searchText(state.query);
});

$("#logout").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST" });
  askForToken("logged out");
});

async function start() {
  try {
    state.session = await api("/session");
  } catch (error) {
    if (error.status !== 401) $("#health").textContent = error.message;
    return;
  }
  const { session } = state;
  $("#who").hidden = $("#logout").hidden = session.open;
  $("#who").textContent = session.open ? "" : `${session.name} (${session.role})`;
  try {
    const h = await api("/health");
    $("#health").textContent = `${h.counts.media} files · ${h.counts.frames} frames · ${h.counts.shots} shots · index ${h.index.state}`;
    if (!h.counts.clusters) $("#tab-clusters").title = "no clusters yet";
  } catch (error) {
    $("#health").textContent = error.message;
  }
}
start();
