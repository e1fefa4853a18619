// The status and try-it page. It calls what any client calls: /ui/api/status (the service's
// state), /metrics (BentoML's Prometheus text) and /predict, exactly as Immich sends it. Photos
// stay in the browser; nothing is stored on the server.
"use strict";

const TEXT = {
  "zh-CN": {
    status: "状态", upstream: "上游（官方 Immich ML）", mtPhotos: "MT Photos 接口", runners: "Runner",
    api: "接口", served: "已处理请求", batches: "批次", meanBatch: "平均批大小", recentLatency: "最近延迟",
    models: "模型", task: "任务", type: "类型", name: "名称", source: "文件来源", present: "已导入", loaded: "已加载",
    yes: "是", no: "否", none: "未设置", answers: "可访问", silent: "无应答",
    tryIt: "试一试", tryHelp: "选择或拖入照片：照片只在浏览器中处理，服务器不保存任何内容。结果来自 Immich 使用的同一个 /predict 接口。",
    drop: "拖入照片，或点击选择", faceThreshold: "人脸归为同一人的相似度阈值", queryPlaceholder: "搜索，例如：海边的日落",
    search: "搜索", ocrWeight: "OCR 文字匹配权重", byClip: "按 CLIP 相似度", byClipAndText: "CLIP + OCR 文字匹配",
    faces: "人脸", lines: "文字", group: "人物", noModel: "本服务没有可用的模型：", mtServed: "已提供", mtMissing: "缺少模型",
    key: "密钥", busy: "处理中…",
    runtime: "推理运行时", runsOn: "运行于", cpuFeatures: "CPU 特性", settingsLabel: "设置",
    runnerServices: "Runner 服务", localRunner: "本机（随本服务启动）",
  },
  en: {
    status: "Status", upstream: "Upstream (stock Immich ML)", mtPhotos: "MT Photos routes", runners: "Runners",
    api: "API", served: "Requests served", batches: "Batches", meanBatch: "Mean batch size", recentLatency: "Recent latency",
    models: "Models", task: "Task", type: "Type", name: "Name", source: "Files from", present: "Present", loaded: "Loaded",
    yes: "yes", no: "no", none: "not set", answers: "answers", silent: "does not answer",
    tryIt: "Try it", tryHelp: "Pick or drop photos: they stay in your browser, nothing is stored on the server. Results come from the same /predict Immich calls.",
    drop: "Drop photos here, or click to pick", faceThreshold: "Same person above similarity", queryPlaceholder: "Search, e.g. sunset by the sea",
    search: "Search", ocrWeight: "Weight of OCR text matches", byClip: "By CLIP similarity", byClipAndText: "CLIP + OCR text matches",
    faces: "Faces", lines: "Text", group: "Person", noModel: "No model served here for ", mtServed: "served", mtMissing: "model missing",
    key: "key", busy: "working…",
    runtime: "Inference runtime", runsOn: "Runs on", cpuFeatures: "CPU features", settingsLabel: "settings",
    runnerServices: "Runner services", localRunner: "here (started with this service)",
  },
};
const DEFAULTS = { ocr: "PP-OCRv5_mobile", "facial-recognition": "buffalo_l", clip: "cn-clip/ViT-B-16__openai" };
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#469990", "#800000"];

const state = { lang: "en", status: null, photos: [], query: null, previous: null };

// ---- language -----------------------------------------------------------------------------

function t(key) { return (TEXT[state.lang] || TEXT.en)[key] || key; }

function setLanguage(lang) {
  state.lang = TEXT[lang] ? lang : "en";
  document.documentElement.lang = state.lang;
  localStorage.setItem("immich-cn-ml-lang", state.lang);
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.lang === state.lang));
  if (state.status) renderStatus();
  renderPhotos();
}

function browserLanguage() {
  const saved = localStorage.getItem("immich-cn-ml-lang");
  if (saved && TEXT[saved]) return saved;
  return (navigator.languages || [navigator.language]).some((l) => /^zh/i.test(l)) ? "zh-CN" : "en";
}

// ---- status -------------------------------------------------------------------------------

function parseMetrics(text) {
  // Prometheus text: name{labels} value. Only the series the runner table needs.
  const series = [];
  for (const line of text.split("\n")) {
    const m = /^(bentoml_service_(?:adaptive_batch_size|request_duration_seconds)_(?:sum|count))\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of m[2].matchAll(/(\w+)="([^"]*)"/g)) labels[k] = v;
    series.push({ name: m[1], labels, value: parseFloat(m[3]) });
  }
  return series;
}

function runnerRows(series) {
  const rows = {};
  const row = (service, api) => (rows[`${service} ${api}`] ||= { service, api, calls: 0, batches: 0, seconds: 0, requests: 0 });
  for (const s of series) {
    if (s.name.startsWith("bentoml_service_adaptive_batch_size")) {
      const r = row(s.labels.service_name, s.labels.method_name);
      if (s.name.endsWith("_sum")) r.calls += s.value; else r.batches += s.value;
    } else if (s.labels.service_name && s.labels.service_name !== state.status.service && s.labels.endpoint) {
      const r = row(s.labels.service_name, s.labels.endpoint.replace(/^\//, ""));
      if (s.name.endsWith("_sum")) r.seconds += s.value; else r.requests += s.value;
    }
  }
  // The runners' own bookkeeping calls (about, load, unload_idle) are no model work.
  return Object.values(rows).filter((r) => r.api && r.service && !/^(metrics|readyz|livez|healthz|about|load|unload_idle)$/.test(r.api));
}

async function loadStatus() {
  try {
    const [status, metrics] = await Promise.all([
      fetch("/ui/api/status").then((r) => r.json()),
      fetch("/metrics").then((r) => r.text()),
    ]);
    state.status = status;
    const rows = runnerRows(parseMetrics(metrics));
    for (const r of rows) {  // latency over the time since the last poll: "recent"
      const before = state.previous && state.previous[`${r.service} ${r.api}`];
      const count = r.requests - (before ? before.requests : 0);
      r.recent = count > 0 ? (r.seconds - (before ? before.seconds : 0)) / count : null;
    }
    state.previous = Object.fromEntries(rows.map((r) => [`${r.service} ${r.api}`, r]));
    state.runners = rows;
    document.getElementById("status-error").hidden = true;
    renderStatus();
  } catch (error) {
    const el = document.getElementById("status-error");
    el.textContent = String(error);
    el.hidden = false;
  }
}

function cell(tr, text, cls) {
  const td = tr.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function renderStatus() {
  const s = state.status;
  document.getElementById("version").textContent = `${s.version} · ${s.device}`;
  const up = document.getElementById("upstream");
  up.textContent = s.upstream.url ? `${s.upstream.url} — ${t(s.upstream.answers ? "answers" : "silent")}` : t("none");
  const mt = document.getElementById("mt-photos");
  mt.textContent = Object.entries(s.mt_photos.routes)
    .map(([route, info]) => `${route}: ${info.model} (${t(info.served ? "mtServed" : "mtMissing")})`).join(" · ");

  // Each runner service: where it runs (its URL, or started here) and whether it answers.
  document.getElementById("runner-services").textContent = (s.runners || []).map((r) =>
    `${r.name}: ${r.url || t("localRunner")} — ${r.problem || t(r.answers ? "answers" : "silent")}${r.device ? ` (${r.device})` : ""}`,
  ).join(" · ") || "—";

  const rt = s.runtime || {};
  document.getElementById("runtime").textContent = rt.cpu === undefined ? "—" : [
    `${rt.cpu} — ${t("cpuFeatures")}: ${(rt.cpu_features || []).join(", ") || "—"}`,
    `${t("settingsLabel")}: BACKEND=${rt.backend}, PRECISION=${rt.precision}`,
    ...Object.entries(rt.plans || {}).map(([kind, how]) => `${kind}: ${how}`),
  ].join(" · ");

  const models = document.querySelector("#models tbody");
  models.replaceChildren();
  for (const m of s.models) {
    const tr = models.insertRow();
    tr.dataset.task = m.task; tr.dataset.name = m.name;
    cell(tr, m.task); cell(tr, m.type); cell(tr, m.name); cell(tr, m.source || "—");
    cell(tr, t(m.present ? "yes" : "no"), m.present ? "yes" : "no");
    cell(tr, t(m.loaded ? "yes" : "no"), m.loaded ? "yes" : "no");
    cell(tr, m.runs_on || "—", "runs-on");
  }
  const runners = document.querySelector("#runners tbody");
  runners.replaceChildren();
  for (const r of state.runners || []) {
    const tr = runners.insertRow();
    tr.dataset.api = r.api;
    cell(tr, `${r.service} / ${r.api}`);
    cell(tr, String(Math.round(r.calls || r.requests)));
    cell(tr, String(Math.round(r.batches)));
    cell(tr, r.batches ? (r.calls / r.batches).toFixed(2) : "—");
    cell(tr, r.recent != null ? `${(1000 * r.recent).toFixed(0)} ms` : "—");
  }
}

// ---- predictions, as Immich sends them --------------------------------------------------------

function served(task) {
  // The model Immich would name, when present here; else the first present one of the task.
  const present = (state.status ? state.status.models : []).filter((m) => m.task === task && m.present);
  const preferred = present.find((m) => m.name === DEFAULTS[task]);
  return preferred ? preferred.name : present.length ? present[0].name : null;
}

async function predict(entries, image, text) {
  const form = new FormData();
  form.append("entries", JSON.stringify(entries));
  if (image) form.append("image", image);
  if (text !== undefined) form.append("text", text);
  const response = await fetch("/predict", { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status}: ${body.detail}`);
  return body;
}

async function analyse(file) {
  const photo = { name: file.name, url: URL.createObjectURL(file), lines: [], faces: [], vector: null, errors: [] };
  state.photos.push(photo);
  renderPhotos();
  const ocr = served("ocr"), faces = served("facial-recognition"), clip = served("clip");
  const jobs = [];
  if (ocr) jobs.push(predict({ ocr: {
    detection: { modelName: ocr, options: { minScore: 0.5, maxResolution: 736 } },
    recognition: { modelName: ocr, options: { minScore: 0.8 } } } }, file).then((a) => {
    const o = a.ocr;
    photo.lines = o.text.map((text, i) => ({
      text, score: o.textScore[i],
      points: [0, 1, 2, 3].map((k) => [o.box[8 * i + 2 * k] * a.imageWidth, o.box[8 * i + 2 * k + 1] * a.imageHeight]),
    }));
  }));
  if (faces) jobs.push(predict({ "facial-recognition": {
    detection: { modelName: faces, options: { minScore: 0.7 } }, recognition: { modelName: faces } } }, file).then((a) => {
    photo.faces = a["facial-recognition"].map((f) => ({ box: f.boundingBox, score: f.score, vector: unit(JSON.parse(f.embedding)) }));
  }));
  if (clip) jobs.push(predict({ clip: { visual: { modelName: clip } } }, file).then((a) => { photo.vector = unit(JSON.parse(a.clip)); }));
  for (const [task, model] of [["ocr", ocr], ["facial-recognition", faces], ["clip", clip]]) {
    if (!model) photo.errors.push(t("noModel") + task);
  }
  const results = await Promise.allSettled(jobs);
  for (const r of results) if (r.status === "rejected") photo.errors.push(String(r.reason.message || r.reason));
  photo.done = true;
  renderPhotos();
  if (state.query) await rank();
}

// ---- faces grouped as Immich would cluster them --------------------------------------------

function unit(v) { const n = Math.hypot(...v) || 1; return v.map((x) => x / n); }
function dot(a, b) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; }

function groups(threshold) {
  // Faces whose cosine similarity reaches the threshold are one person (linked transitively).
  const faces = state.photos.flatMap((p, pi) => p.faces.map((f, fi) => ({ key: `${pi}:${fi}`, face: f })));
  const parent = faces.map((_, i) => i);
  const find = (i) => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  for (let i = 0; i < faces.length; i++)
    for (let j = i + 1; j < faces.length; j++)
      if (dot(faces[i].face.vector, faces[j].face.vector) >= threshold) parent[find(i)] = find(j);
  const index = {};
  const out = {};
  faces.forEach((f, i) => {
    const root = find(i);
    if (!(root in index)) index[root] = Object.keys(index).length;
    out[f.key] = index[root];
  });
  return out;
}

// ---- search: CLIP, and CLIP with OCR text matches --------------------------------------------

function bigrams(text) {
  const cjk = [...text.replace(/\s+/g, "")].filter((c) => /[\u3400-\u9fff\uf900-\ufaff]/.test(c));
  const out = new Set();
  for (let i = 0; i + 1 < cjk.length; i++) out.add(cjk[i] + cjk[i + 1]);
  return out;
}

function textMatch(query, text) {
  // 1 for the query found whole in the photo's text; else the share of its CJK bigrams found.
  const q = query.trim().toLowerCase(), body = text.toLowerCase();
  if (!q) return 0;
  if (body.includes(q)) return 1;
  const wanted = bigrams(q);
  if (!wanted.size) return 0;
  const have = bigrams(body);
  let found = 0;
  for (const b of wanted) if (have.has(b)) found++;
  return found / wanted.size;
}

async function rank() {
  const clip = served("clip");
  const query = document.getElementById("query").value;
  if (!clip || !query) return;
  const answer = await predict({ clip: { textual: { modelName: clip, options: { language: state.lang } } } }, null, query);
  state.query = { text: query, vector: unit(JSON.parse(answer.clip)) };
  renderRankings();
}

function renderRankings() {
  if (!state.query) return;
  const weight = parseFloat(document.getElementById("weight").value);
  const scored = state.photos.filter((p) => p.vector).map((p) => {
    const clip = dot(p.vector, state.query.vector);
    const match = textMatch(state.query.text, p.lines.map((l) => l.text).join(" "));
    return { name: p.name, clip, match, combined: clip + weight * match };
  });
  const list = (id, key, label) => {
    const ol = document.getElementById(id);
    ol.replaceChildren();
    for (const s of [...scored].sort((a, b) => b[key] - a[key])) {
      const li = document.createElement("li");
      li.dataset.photo = s.name;
      li.dataset.score = String(s[key]);
      li.textContent = `${s.name} — ${label(s)}`;
      ol.appendChild(li);
    }
  };
  list("ranking-clip", "clip", (s) => s.clip.toFixed(4));
  list("ranking-text", "combined", (s) => `${s.combined.toFixed(4)} (CLIP ${s.clip.toFixed(4)} + ${weight.toFixed(2)} × ${s.match.toFixed(2)})`);
}

// ---- drawing ------------------------------------------------------------------------------

function renderPhotos() {
  const threshold = parseFloat(document.getElementById("threshold").value);
  const grouped = groups(threshold);
  const container = document.getElementById("photos");
  container.replaceChildren();
  state.photos.forEach((photo, pi) => {
    const box = document.createElement("div");
    box.className = "photo";
    box.dataset.photo = photo.name;
    box.dataset.done = photo.done ? "true" : "false";
    const title = document.createElement("h4");
    title.textContent = photo.done ? photo.name : `${photo.name} — ${t("busy")}`;
    const canvas = document.createElement("canvas");
    box.append(title, canvas);
    const image = new Image();
    image.onload = () => draw(canvas, image, photo, pi, grouped);
    image.src = photo.url;

    const lines = document.createElement("ul");
    lines.className = "lines";
    for (const line of photo.lines) {
      const li = document.createElement("li");
      li.dataset.text = line.text;
      li.textContent = `${line.text} (${line.score.toFixed(2)})`;
      lines.appendChild(li);
    }
    const faces = document.createElement("ul");
    faces.className = "faces";
    photo.faces.forEach((face, fi) => {
      const li = document.createElement("li");
      const group = grouped[`${pi}:${fi}`];
      li.dataset.group = String(group);
      li.dataset.box = JSON.stringify(face.box);
      li.textContent = `${t("group")} ${group + 1} · ${face.score.toFixed(2)} · [${face.box.x1}, ${face.box.y1}, ${face.box.x2}, ${face.box.y2}]`;
      faces.appendChild(li);
    });
    box.append(lines, faces);
    for (const error of photo.errors) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = error;
      box.appendChild(p);
    }
    container.appendChild(box);
  });
  const summary = document.getElementById("groups");
  summary.replaceChildren();
  const counts = {};
  for (const g of Object.values(grouped)) counts[g] = (counts[g] || 0) + 1;
  for (const [g, n] of Object.entries(counts)) {
    const span = document.createElement("span");
    span.className = "group";
    span.style.background = COLOURS[g % COLOURS.length];
    span.textContent = `${t("group")} ${Number(g) + 1}: ${n} ${t("faces")}`;
    summary.appendChild(span);
  }
  renderRankings();
}

function draw(canvas, image, photo, pi, grouped) {
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const px = Math.max(2, image.naturalWidth / 300);
  ctx.lineWidth = px;
  ctx.font = `${Math.round(px * 7)}px sans-serif`;
  for (const line of photo.lines) {
    ctx.strokeStyle = "#00a3ff";
    ctx.beginPath();
    line.points.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.stroke();
    ctx.fillStyle = "#00a3ff";
    ctx.fillText(`${line.text} ${line.score.toFixed(2)}`, line.points[0][0], line.points[0][1] - px);
  }
  photo.faces.forEach((face, fi) => {
    const colour = COLOURS[grouped[`${pi}:${fi}`] % COLOURS.length];
    ctx.strokeStyle = colour;
    ctx.strokeRect(face.box.x1, face.box.y1, face.box.x2 - face.box.x1, face.box.y2 - face.box.y1);
    ctx.fillStyle = colour;
    ctx.fillText(`${t("group")} ${grouped[`${pi}:${fi}`] + 1} ${face.score.toFixed(2)}`, face.box.x1, face.box.y1 - px);
  });
}

// ---- wiring -------------------------------------------------------------------------------

function start() {
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => setLanguage(b.dataset.lang)));
  const files = document.getElementById("files");
  const add = (list) => { for (const file of list) if (file.type.startsWith("image/")) analyse(file); };
  files.addEventListener("change", () => { add(files.files); files.value = ""; });
  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); add(e.dataTransfer.files); });
  const threshold = document.getElementById("threshold");
  threshold.addEventListener("input", () => {
    document.getElementById("threshold-value").textContent = parseFloat(threshold.value).toFixed(2);
    renderPhotos();
  });
  const weight = document.getElementById("weight");
  weight.addEventListener("input", () => {
    document.getElementById("weight-value").textContent = parseFloat(weight.value).toFixed(2);
    renderRankings();
  });
  document.getElementById("search").addEventListener("submit", (e) => {
    e.preventDefault();
    rank().catch((error) => {
      const el = document.getElementById("try-error");
      el.textContent = String(error.message || error);
      el.hidden = false;
    });
  });
  setLanguage(browserLanguage());
  loadStatus().then(() => setLanguage(state.lang));
  setInterval(loadStatus, 5000);
}

start();
