"use strict";
(() => {
function unpack(x) {  // inverse of html._pack
  if (Array.isArray(x)) return x.map(unpack);
  if (!x || typeof x !== "object") return x;
  const K = x.$k;
  if (K) return x.$v.map(r => { const o = {}; for (let j = 0; j < K.length; j++) o[K[j]] = unpack(r[j]); return o; });
  const o = {};
  for (const k in x) o[k] = unpack(x[k]);
  return o;
}
const R = unpack(JSON.parse(document.getElementById("report-data").textContent));
const pool = R._pool || [], CONF = R._conf || {};
const ops = R.ops || [], N = ops.length;
for (const o of ops) {
  o.reasons = (o.reasons || []).map(k => pool[k]);
  o.notes = (o.notes || []).map(k => pool[k]);
}
const DEV = ["ane", "gpu", "cpu"], LABEL = {ane: "ANE", gpu: "GPU", cpu: "CPU"};
const MS = R.kind === "measurement" ? "ms" : "Est. ms";
const $ = (s, el = document) => el.querySelector(s);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);
const NF = new Intl.NumberFormat("en-US"), fmt = n => n == null ? "–" : NF.format(n);
const human = n => {
  if (n == null) return "–";
  for (const [u, d] of [["T", 1e12], ["G", 1e9], ["M", 1e6], ["k", 1e3]])
    if (Math.abs(n) >= d) return (n / d).toPrecision(3).replace(/\.?0+$/, "") + " " + u;
  return String(n);
};
const shape = s => s == null ? "?" : s.map(d => d ?? "?").join("×") || "scalar";
const tensor = t => `${shape(t.shape)} ${t.dtype || ""}`.trim();
const tail = (s, n) => s.length > n ? "…" + s.slice(s.length - n + 1) : s;
const badge = d => `<span class="dev dev-${d}"><i aria-hidden="true"></i>${LABEL[d] || esc(d)}</span>`;
const link = i => `<button type="button" class="link" data-op="${i}">${i} ${esc(tail(ops[i].name, 28))}</button>`;

// prefix sums of ops per device: count in [a, b) = cum[d][b] - cum[d][a]
const cum = Object.fromEntries(DEV.map(d => [d, new Int32Array(N + 1)]));
ops.forEach((o, i) => DEV.forEach(d => { cum[d][i + 1] = cum[d][i] + (o.device === d); }));
const mix = (a, b) => DEV.map(d => cum[d][b] - cum[d][a]);
const consumers = ops.map(() => []);
ops.forEach((o, i) => (o.inputs || []).forEach(t => { if (t.producer != null && ops[t.producer]) consumers[t.producer].push(i); }));

let sel = -1;
function select(i, from) {
  if (!(i >= 0 && i < N)) return;
  sel = i;
  table.show(i, from !== "table");
  strip.show(i);
  graph.show(i, from !== "graph");
  detail(i);
  try { history.replaceState(null, "", "#op-" + i); } catch (e) { /* sandboxed frame */ }
}

/* ---------- timeline strip ---------- */
const strip = (() => {
  const host = $("#strip"), sws = R.switches || [];
  const parts = ops.map((o, i) => i && o.part !== ops[i - 1].part ? i : -1).filter(i => i > 0);
  const PT = parts.length ? 13 : 0, TOP = PT + 18, H = 34, AX = TOP + H + 13, OVY = AX + 6, OVH = 8, HEIGHT = OVY + OVH + 2;
  let v0 = 0, v1 = Math.max(N, 1), drag = null;

  function clamp() {
    const span = Math.min(N, Math.max(v1 - v0, Math.min(N, 6)));
    v0 = Math.max(0, Math.min(v0, N - span));
    v1 = v0 + span;
  }
  // Device runs for ops [a, b) drawn in width w; below 2 px per op, 2 px bins show the device mix.
  function bars(a, b, w, y, h, labels) {
    const k = w / (b - a), out = [];
    const rect = (d, x, ww, yy = y, hh = h) => out.push(`<rect class="p-${d}" x="${x.toFixed(1)}" y="${yy.toFixed(1)}" width="${Math.max(ww, .5).toFixed(1)}" height="${hh.toFixed(1)}"/>`);
    if (k >= 2) {
      for (let i = Math.floor(a); i < b && i < N;) {
        let j = i;
        while (j + 1 < b && j + 1 < N && ops[j + 1].device === ops[i].device) j++;
        rect(ops[i].device, (i - a) * k, (j + 1 - i) * k);
        i = j + 1;
      }
      if (labels && k >= 5)
        for (let i = Math.ceil(a); i < b; i++) {
          const x = (i - a) * k;
          out.push(`<line class="sep" x1="${x}" x2="${x}" y1="${y}" y2="${y + h}"/>`);
          if (k >= 46) out.push(`<text class="oplbl" x="${x + 4}" y="${y + h / 2 + 4}" fill="var(--on-${ops[i].device})">${esc(tail(ops[i].type, Math.floor(k / 7)))}</text>`);
        }
    } else {
      let run = null;
      const flush = () => { if (run) rect(run.d, run.x, run.e - run.x); run = null; };
      for (let x = 0; x < w; x += 2) {
        const lo = Math.floor(a + x / k), hi = Math.min(N, Math.max(lo + 1, Math.floor(a + (x + 2) / k)));
        const m = mix(lo, hi), tot = hi - lo, pure = m.findIndex(c => c === tot);
        if (pure >= 0) {
          if (run && run.d === DEV[pure]) run.e = x + 2;
          else { flush(); run = {d: DEV[pure], x, e: x + 2}; }
          continue;
        }
        flush();
        let yy = y;
        DEV.forEach((d, n) => { if (m[n]) { rect(d, x, 2, yy, h * m[n] / tot); yy += h * m[n] / tot; } });
      }
      flush();
    }
    return out.join("");
  }
  function render() {
    if (!N) { host.textContent = "No ops."; return; }
    clamp();
    const focus = host.contains(document.activeElement) && document.activeElement.dataset.s;
    const w = host.clientWidth || 800, k = w / (v1 - v0), X = i => (i - v0) * k, out = [];
    out.push(`<svg width="${w}" height="${HEIGHT}" role="group" aria-label="Ops ${Math.floor(v0)} to ${Math.ceil(v1) - 1} of ${N}">`);
    out.push(bars(v0, v1, w, TOP, H, true));
    for (const p of parts) if (p >= v0 && p <= v1)
      out.push(`<line class="part" x1="${X(p)}" x2="${X(p)}" y1="0" y2="${TOP + H + 4}"/><text class="axis" x="${X(p) + 3}" y="${PT - 3}">${esc(ops[p].part)}</text>`);
    for (let t = 0; t <= 4; t++) {
      const i = Math.min(N - 1, Math.floor(v0 + t * (v1 - v0) / 4)), x = Math.min(w - 2, Math.max(2, X(i + .5)));
      out.push(`<text class="axis" x="${x}" y="${AX}" text-anchor="${["start", "middle", "middle", "middle", "end"][t]}">op ${i}</text>`);
    }
    // switch markers, clustered when closer than 10 px
    for (let s = 0; s < sws.length;) {
      const x = X(sws[s].before);
      let e = s + 1;
      while (e < sws.length && X(sws[e].before) - x < 10) e++;
      if (x >= -5 && x <= w + 5) {
        const a = sws[s], n = e - s, label = n > 1
          ? `${n} device switches between op ${a.after} and op ${sws[e - 1].before}; activate to zoom in`
          : `Switch ${LABEL[a.from] || a.from} to ${LABEL[a.to] || a.to} after op ${a.after} ${a.after_name}, before op ${a.before} ${a.before_name}`;
        out.push(`<g class="sw" role="button" tabindex="0" data-s="${s}" data-n="${n}" aria-label="${esc(label)}"><title>${esc(label)}</title>` +
          `<rect x="${x - 4.5}" y="${PT}" width="9" height="${TOP + H - PT}" fill="transparent"/><line x1="${x}" x2="${x}" y1="${TOP - 3}" y2="${TOP + H}"/>` +
          `<path d="${n > 1 ? `M${x - 4.5} ${PT + 1}L${x + 4.5} ${PT + 1}L${x} ${PT + 7}ZM${x - 4.5} ${PT + 8}L${x + 4.5} ${PT + 8}L${x} ${TOP - 3}Z` : `M${x - 4.5} ${PT + 3}L${x + 4.5} ${PT + 3}L${x} ${TOP - 3}Z`}"/></g>`);
      }
      s = e;
    }
    if (sel >= v0 && sel < v1) {
      const x = X(sel + .5);
      out.push(`<g class="cursor" data-op="${sel}"><line x1="${x}" x2="${x}" y1="${TOP - 2}" y2="${TOP + H + 2}"/><path d="M${x - 5} ${TOP + H + 8}L${x + 5} ${TOP + H + 8}L${x} ${TOP + H + 2}Z"/></g>`);
    }
    if (v1 - v0 < N) {
      out.push(`<g class="overview">${bars(0, N, w, OVY, OVH, false)}<rect class="win" x="${v0 / N * w}" y="${OVY - 1}" width="${Math.max(2, (v1 - v0) / N * w)}" height="${OVH + 2}"/></g>`);
    }
    host.innerHTML = out.join("") + "</svg>";
    if (focus) ($(`.sw[data-s="${focus}"]`, host) || host).focus({preventScroll: true});
  }
  function zoomBy(f, at = (v0 + v1) / 2) {
    const span = (v1 - v0) / f, r = (at - v0) / (v1 - v0);
    v0 = at - r * span; v1 = v0 + span;
    render();
  }
  const opAt = ev => {
    const b = host.getBoundingClientRect(), x = ev.clientX - b.left, y = ev.clientY - b.top;
    return y >= OVY - 2 ? {ov: true, i: x / b.width * N} : {i: v0 + x / b.width * (v1 - v0)};
  };
  function activate(g) {
    const s = +g.dataset.s, n = +g.dataset.n;
    if (n > 1) { v0 = sws[s].after - 2; v1 = sws[s + n - 1].before + 3; render(); }
    else select(sws[s].before, "strip");
  }
  host.addEventListener("wheel", ev => {  // Ctrl/⌘ + wheel (and trackpad pinch) zooms; a plain wheel scrolls the page
    if (!ev.ctrlKey && !ev.metaKey) return;
    ev.preventDefault();
    zoomBy(ev.deltaY < 0 ? 1.5 : 1 / 1.5, opAt(ev).i);
  }, {passive: false});
  host.addEventListener("mousedown", ev => { drag = {x: ev.clientX, v0, moved: false}; });
  addEventListener("mousemove", ev => {
    if (!drag || Math.abs(ev.clientX - drag.x) < 4 && !drag.moved) return;
    drag.moved = true;
    const span = v1 - v0;
    v0 = drag.v0 - (ev.clientX - drag.x) / host.clientWidth * span; v1 = v0 + span;
    render();
  });
  addEventListener("mouseup", () => setTimeout(() => { drag = null; }));
  host.addEventListener("click", ev => {
    if (drag && drag.moved) return;
    const g = ev.target.closest(".sw");
    if (g) return activate(g);
    const p = opAt(ev);
    if (p.ov) { const span = v1 - v0; v0 = p.i - span / 2; v1 = v0 + span; render(); }
    else select(Math.min(N - 1, Math.floor(p.i)), "strip");
  });
  host.addEventListener("keydown", ev => {
    const g = ev.target.closest(".sw"), span = v1 - v0;
    if (g && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); activate(g); return; }
    const act = {"+": () => zoomBy(2), "=": () => zoomBy(2), "-": () => zoomBy(.5), "0": reset,
      ArrowLeft: () => { v0 -= span / 5; v1 -= span / 5; render(); },
      ArrowRight: () => { v0 += span / 5; v1 += span / 5; render(); }}[ev.key];
    if (act) { ev.preventDefault(); act(); }
  });
  function reset() { v0 = 0; v1 = N; render(); }
  $("#zoom-in").onclick = () => zoomBy(2, sel >= v0 && sel < v1 ? sel + .5 : undefined);
  $("#zoom-out").onclick = () => zoomBy(.5);
  $("#zoom-reset").onclick = reset;
  render();
  new ResizeObserver(render).observe(host);

  const list = $("#switch-list");
  list.addEventListener("toggle", () => {
    const ol = $("ol", list);
    if (!list.open || ol.childElementCount) return;
    ol.innerHTML = sws.map(s => `<li><button type="button" data-op="${s.before}">after ${badge(s.from)} op ${s.after} <code>${esc(tail(s.after_name, 40))}</code> → ${badge(s.to)} op ${s.before} <code>${esc(tail(s.before_name, 40))}</code></button></li>`).join("");
  });
  list.addEventListener("click", ev => { const b = ev.target.closest("[data-op]"); if (b) select(+b.dataset.op, "list"); });
  return {
    show(i) {
      if (i < v0 || i >= v1) { const span = v1 - v0; v0 = i + .5 - span / 2; v1 = v0 + span; }
      render();
    },
  };
})();

/* ---------- graph: dataflow layers top to bottom, inside collapsible groups by module path ---------- */
const graph = (() => {
  const host = $("#graph");
  const LEAF = 40, MAXK = 16, MAXNAMED = 64, NW = 158, NH = 40, GX = 14, GY = 26, HEAD = 24, GP = 8, PAD = 14;
  const groups = new Map(), open = new Set();
  const prods = ops.map((o, i) => (o.inputs || []).map(t => t.producer).filter(p => p != null && p >= 0 && p < i));
  // An op's grouping text: its module path (torch scope names) when known, else its name, cut into
  // tokens at '.', '/', ':' and '_'; the key at depth d is the text up to the end of its d-th token.
  const cuts = new Array(N);
  function tokens(i) {
    if (cuts[i]) return cuts[i];
    const path = ops[i].source?.module_path, text = path || ops[i].name, ends = [];
    for (const m of text.matchAll(path ? /[^.]+/g : /[^./:_]+/g)) ends.push(m.index + m[0].length);
    return (cuts[i] = {text, ends: ends.length ? ends : [text.length], path: !!path});
  }
  const keyAt = (i, d) => { const t = tokens(i); return t.text.slice(0, t.ends[Math.min(d, t.ends.length) - 1]); };
  function group(lo, hi, label, depth) {
    if (lo === hi) return lo;
    const g = {id: `${lo}-${hi}`, lo, hi, label, depth, path: tokens(lo).path};
    groups.set(g.id, g);
    return g;
  }
  // cut runs into at most MAXK groups of about equal size, never inside a run
  function chunk(runs, depth, n) {
    const target = Math.ceil(n / Math.min(MAXK, Math.ceil(n / LEAF))), out = [];
    let cur = null;
    for (const r of runs) {
      if (cur && cur.hi - cur.lo + 1 + r.hi - r.lo + 1 > target) { out.push(cur); cur = null; }
      cur = cur ? {...cur, hi: r.hi, last: r.key} : {lo: r.lo, hi: r.hi, key: r.key, last: r.key};
    }
    out.push(cur);
    const stem = i => keyAt(i, Math.max(1, tokens(i).ends.length - 1));  // the name without its last token
    return out.map(c => group(c.lo, c.hi, c.key === c.last ? c.key : `${stem(c.lo)} … ${stem(c.hi)}`, depth));
  }
  function shared(lo, hi, d) {  // the deepest depth at which ops lo..hi still share one key
    for (;; d++) {
      const k = keyAt(lo, d + 1);
      if (d >= tokens(lo).ends.length) return d;
      for (let i = lo + 1; i <= hi; i++) if (keyAt(i, d + 1) !== k) return d;
    }
  }
  function split(lo, hi, depth) {
    const n = hi - lo + 1, out = [], small = n <= LEAF;  // a small group splits only into a few submodules
    const each = () => { for (let i = lo; i <= hi; i++) out.push(i); return out; };
    if (small && !(tokens(lo).path && n > 8)) return each();
    let deepest = 0;
    for (let i = lo; i <= hi; i++) deepest = Math.max(deepest, tokens(i).ends.length);
    for (let d = depth + 1; d <= deepest; d++) {
      const runs = [];
      for (let i = lo; i <= hi; i++) {
        const key = keyAt(i, d), last = runs[runs.length - 1];
        if (last && last.key === key) last.hi = i; else runs.push({key, lo: i, hi: i});
      }
      if (small && runs.length > 1 && (runs.length > 6 || runs.some(r => r.hi === r.lo))) return each();
      if (runs.length > MAXNAMED) return chunk(runs, d - 1, n);
      if (runs.length > 1) return runs.map(r => { const e = shared(r.lo, r.hi, d); return group(r.lo, r.hi, keyAt(r.lo, e), e); });
    }
    if (small) return each();
    const label = keyAt(lo, deepest), runs = [];  // one module, no structure left: slices of it
    for (let i = lo; i <= hi; i++) runs.push({key: `${label} [${i}]`, lo: i, hi: i});
    return chunk(runs, deepest + 1, n).map(g => g.id ? Object.assign(g, {label: `${label} [ops ${g.lo}–${g.hi}]`}) : g);
  }
  const kids = g => g.kids || (g.kids = split(g.lo, g.hi, g.depth));
  const partRuns = [];
  ops.forEach((o, i) => { if (i && o.part === ops[i - 1].part) partRuns[partRuns.length - 1].hi = i; else partRuns.push({lo: i, hi: i, part: o.part}); });
  const root = {id: "root", lo: 0, hi: N - 1, depth: 0,
    kids: N && partRuns.length > 1 ? partRuns.map(p => { const g = group(p.lo, p.hi, `part ${p.part}`, 0); if (g.id) g.part = true; return g; }) : null};
  const lo = v => typeof v === "number" ? v : v.lo;
  const key = v => typeof v === "number" ? v : v.id;

  function leaves() {
    let n = 0;
    (function walk(list) { for (const x of list) if (typeof x === "object" && open.has(x.id)) walk(kids(x)); else n++; })(N ? kids(root) : []);
    return n;
  }
  function initial() {  // open the biggest groups while the graph stays readable
    open.clear();
    const limit = N <= 100 ? Infinity : 60, shut = N ? kids(root).filter(x => typeof x === "object") : [];
    let n = leaves();
    while (shut.length) {
      shut.sort((a, b) => (b.hi - b.lo) - (a.hi - a.lo));
      const g = shut.findIndex(g => n - 1 + kids(g).length <= limit);
      if (g < 0) break;
      const [x] = shut.splice(g, 1);
      open.add(x.id);
      n += kids(x).length - 1;
      shut.push(...kids(x).filter(y => typeof y === "object"));
    }
  }
  function expandTo(i) {
    let list = N ? kids(root) : [], changed = false;
    for (;;) {
      const g = list.find(x => typeof x === "object" && x.lo <= i && i <= x.hi);
      if (!g) return changed;
      if (!open.has(g.id)) { open.add(g.id); changed = true; }
      list = kids(g);
    }
  }
  // Lay out the items of one list (ops, shut groups, open groups as frames) in dataflow layers:
  // an item's layer is 1 + the largest layer of the items that produce its inputs.
  function place(list, a, b, sequential) {
    const starts = list.map(lo), preds = list.map(() => new Set());
    const itemOf = i => { let l = 0, h = list.length - 1; while (l < h) { const m = (l + h + 1) >> 1; if (starts[m] <= i) l = m; else h = m - 1; } return l; };
    for (let i = a; i <= b; i++) for (const p of prods[i]) {
      if (p < a) continue;
      const x = itemOf(p), y = itemOf(i);
      if (x !== y) preds[y].add(x);
    }
    if (sequential) list.forEach((_, k) => k && preds[k].add(k - 1));  // pipeline parts run one after another
    const items = list.map(v => {
      if (typeof v === "object" && open.has(v.id)) {
        const inner = place(kids(v), v.lo, v.hi, false);
        return {v, inner, w: Math.max(inner.w + 2 * GP, NW), h: inner.h + HEAD + GP};
      }
      return {v, w: NW, h: NH};
    });
    const layer = [], rows = [];
    items.forEach((it, k) => {
      layer[k] = 0;
      for (const p of preds[k]) layer[k] = Math.max(layer[k], layer[p] + 1);
      (rows[layer[k]] ||= []).push(k);
    });
    let y = 0, w = 0;
    for (const row of rows) {
      const want = row.map(k => preds[k].size ? [...preds[k]].reduce((s, p) => s + items[p].x + items[p].w / 2, 0) / preds[k].size : 0);
      const order = row.map((k, n) => n).sort((p, q) => want[p] - want[q] || row[p] - row[q]);
      let x = 0, h = 0;
      for (const n of order) {
        const it = items[row[n]];
        it.x = Math.max(x, want[n] - it.w / 2); it.y = y;
        x = it.x + it.w + GX; h = Math.max(h, it.h); w = Math.max(w, it.x + it.w);
      }
      y += h + GY;
    }
    return {items, w, h: Math.max(0, y - GY)};
  }
  let pos = new Map();  // op index or group id -> {x, y} of its visible node
  function draw(box, ox, oy, parent, frames, nodes) {
    for (const it of box.items) {
      const x = ox + it.x, y = oy + it.y, v = it.v;
      if (it.inner) {
        const n = v.hi - v.lo + 1, label = parent && v.label.startsWith(parent + ".") ? v.label.slice(parent.length + 1) : v.label;
        frames.push(`<g class="frame" data-g="${v.id}" data-path="${esc(v.label)}"><rect class="fbox" x="${x}" y="${y}" width="${it.w}" height="${it.h}" rx="8"/>` +
          `<g class="fhead" role="button" tabindex="0" aria-expanded="true" data-close="${v.id}" aria-label="Collapse ${esc(v.label)} (${n} ops)">` +
          `<title>${esc(v.label)}: ops ${v.lo}–${v.hi}. Click to collapse.</title><rect x="${x}" y="${y}" width="${it.w}" height="${HEAD - 4}" rx="8"/>` +
          `<text x="${x + 8}" y="${y + 14}">▾ ${esc(tail(label, Math.floor(it.w / 7) - 10))} <tspan class="sub">${n} ops</tspan></text></g></g>`);
        draw(it.inner, x + GP, y + HEAD, v.part ? "" : v.label, frames, nodes);
        continue;
      }
      pos.set(key(v), {x, y});
      if (typeof v === "number") {
        const o = ops[v];
        nodes.push(`<g class="node dev-${o.device}${v === sel ? " sel" : ""}" data-op="${v}" role="button" tabindex="0" transform="translate(${x},${y})" aria-label="op ${v} ${esc(o.name)}, ${esc(o.type)}, ${LABEL[o.device] || o.device}">` +
          `<title>${esc(o.name)}</title><rect class="box" width="${NW}" height="${NH}" rx="6"/><rect class="p-${o.device}" x="1" y="1" width="9" height="${NH - 2}" rx="3"/>` +
          `<text x="16" y="16">${esc(tail(o.name, 22))}</text><text class="sub" x="16" y="31">${LABEL[o.device] || o.device} · ${esc(tail(o.type, 16))}</text></g>`);
      } else {
        const m = mix(v.lo, v.hi + 1), n = v.hi - v.lo + 1, maj = DEV[m.indexOf(Math.max(...m))], off = n - m[0];
        const label = parent && v.label.startsWith(parent + ".") ? v.label.slice(parent.length + 1) : v.label;
        let bx = 10;
        const bar = DEV.map((d, j) => { const w = (NW - 20) * m[j] / n, r = w ? `<rect class="p-${d}" x="${bx}" y="${NH - 8}" width="${w}" height="5"/>` : ""; bx += w; return r; }).join("");
        nodes.push(`<g class="node group dev-${maj}" data-g="${v.id}" data-path="${esc(v.label)}" role="button" tabindex="0" aria-expanded="false" transform="translate(${x},${y})" aria-label="${v.path ? "Module" : "Group"} ${esc(v.label)}: ${n} ops, ${off} not on the Neural Engine. Press Enter to expand.">` +
          `<title>${esc(v.label)} (ops ${v.lo}–${v.hi})</title><rect class="box" width="${NW}" height="${NH}" rx="6"/><text x="10" y="15">▸ ${esc(tail(label, 21))}</text>` +
          `<text class="sub" x="10" y="28">${n} ops${off ? ` · ${off} off ANE` : ""}</text>${bar}</g>`);
      }
    }
  }
  function render() {
    if (!N) { host.textContent = "No ops."; return; }
    const box = place(kids(root), 0, N - 1, partRuns.length > 1), frames = [], nodes = [];
    pos = new Map();
    draw(box, PAD, PAD, "", frames, nodes);
    // one edge per pair of visible nodes that exchange a tensor, from the producer's bottom to the consumer's top
    const ids = [...pos.keys()], boxes = [...pos.values()], owner = new Int32Array(N), M = ids.length, edges = new Set(), paths = [];
    ids.forEach((k, n) => { if (typeof k === "number") owner[k] = n; else { const g = groups.get(k); owner.fill(n, g.lo, g.hi + 1); } });
    for (let i = 0; i < N; i++) for (const p of prods[i]) {
      const a = owner[p], b = owner[i];
      if (a === b || edges.has(a * M + b)) continue;
      edges.add(a * M + b);
      const A = boxes[a], B = boxes[b], mid = (A.x + B.x) / 2;
      let d;
      if (boxes.some(q => q.y > A.y && q.y < B.y && Math.abs(q.x - mid) < NW)) {  // a node in the way: arc round its right side
        const xa = A.x + NW, ya = A.y + NH / 2, xb = B.x + NW, yb = B.y + NH / 2, k = Math.min(60, 14 + (yb - ya) / 12);
        d = `M${xa} ${ya}C${xa + k} ${ya} ${xb + k} ${yb} ${xb} ${yb}`;
      } else {
        const xa = A.x + NW / 2, ya = A.y + NH, xb = B.x + NW / 2, yb = B.y, c = Math.max(12, (yb - ya) / 2);
        d = `M${xa} ${ya}C${xa} ${ya + c} ${xb} ${yb - c} ${xb} ${yb}`;
      }
      paths.push(`<path class="edge" data-a="${ids[a]}" data-b="${ids[b]}" d="${d}"/>`);
    }
    host.innerHTML = `<svg width="${box.w + 2 * PAD + 48}" height="${box.h + 2 * PAD}" role="group" aria-label="${pos.size} nodes, top to bottom in dataflow order">` +
      frames.join("") + paths.join("") + nodes.join("") + "</svg>";
    hot();
  }
  function hot() {
    host.querySelectorAll(".sel").forEach(e => e.classList.remove("sel"));
    host.querySelectorAll(".edge.hot").forEach(e => e.classList.remove("hot"));
    if (sel < 0) return;
    $(`.node[data-op="${sel}"]`, host)?.classList.add("sel");
    host.querySelectorAll(`.edge[data-a="${sel}"],.edge[data-b="${sel}"]`).forEach(e => e.classList.add("hot"));
  }
  const focusNode = v => host.querySelector(typeof v === "number" ? `.node[data-op="${v}"]` : `[data-g="${v.id}"] .fhead, .node[data-g="${v.id}"]`)?.focus({preventScroll: true});
  function activate(n) {
    if (n.dataset.op) return select(+n.dataset.op, "graph");
    if (n.dataset.close) {  // collapse an open group and everything open inside it
      const g = groups.get(n.dataset.close);
      for (const id of [...open]) { const h = groups.get(id); if (h && h.lo >= g.lo && h.hi <= g.hi) open.delete(id); }
      render();
      return focusNode(g);
    }
    open.add(n.dataset.g);
    render();
    focusNode(kids(groups.get(n.dataset.g))[0]);
  }
  host.addEventListener("click", ev => { const n = ev.target.closest(".node, .fhead"); if (n) activate(n); });
  // arrow keys move to the nearest node or group header in that direction
  const AXES = {ArrowDown: [0, 1], ArrowUp: [0, -1], ArrowRight: [1, 0], ArrowLeft: [-1, 0]};
  function step(n, [dx, dy]) {
    const c = r => [r.left + r.width / 2, r.top + r.height / 2], [x, y] = c(n.getBoundingClientRect());
    let best = null, score = Infinity;
    for (const m of host.querySelectorAll(".node, .fhead")) {
      const [mx, my] = c(m.getBoundingClientRect()), along = (mx - x) * dx + (my - y) * dy;
      if (m === n || along < 1) continue;
      const s = along + 3 * Math.abs((mx - x) * dy + (my - y) * dx);
      if (s < score) { score = s; best = m; }
    }
    best?.focus();
  }
  host.addEventListener("keydown", ev => {
    const n = ev.target.closest(".node, .fhead");
    if (!n) return;
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); activate(n); } else if (AXES[ev.key]) { ev.preventDefault(); step(n, AXES[ev.key]); }
  });
  $("#graph-reset").onclick = () => { initial(); render(); };
  $("#graph-collapse").onclick = () => { open.clear(); render(); };
  initial();
  render();
  return {
    show(i, scroll) {
      if (expandTo(i)) render(); else hot();
      const p = pos.get(i);
      if (p && scroll) host.scrollTo({left: p.x - host.clientWidth / 2 + NW / 2, top: p.y - host.clientHeight / 2 + NH / 2});
    },
  };
})();

/* ---------- ops table: filter, sort, pick columns, virtual rows (heights measured: cells wrap) ---------- */
const table = (() => {
  const wrap = $("#table-wrap"), tbl = $("#ops-table"), tbody = $("tbody", tbl), RH = 30, BUF = 300;
  const extraKeys = [...new Set(ops.flatMap(o => Object.keys(o.extra || {})))];
  const hasCost = ops.some(o => o.cost_ms && o.cost_ms[o.device] != null);
  const ruleIds = o => [...new Set(o.reasons.concat(o.notes).map(r => r.rule))];
  const io = ts => (ts || []).filter(t => !t.const).map(tensor).join(", ");
  const num = v => typeof v === "number" ? (Number.isInteger(v) ? fmt(v) : String(+v.toPrecision(4))) : esc(v ?? "–");
  const why = o => o.reasons.map(r => `<p><code>${esc(r.rule)}</code>${esc(r.message || r.title)}</p>`).join("") +
    o.notes.filter(r => !o.reasons.some(x => x.rule === r.rule)).map(r => `<code class="note" title="note: ${esc(r.title)}">${esc(r.rule)}</code>`).join("");
  // w: fixed width (px or %); columns without one share what is left. on: shown unless the user hides it.
  const COLS = [
    {k: "index", t: "#", n: 1, w: "60px", on: 1, v: o => o.index},
    {k: "name", t: "Name", w: "18%", on: 1, v: o => o.name, c: "name"},
    {k: "type", t: "Type", w: "96px", on: 1, v: o => o.type},
    {k: "device", t: "Device", w: "72px", on: 1, v: o => DEV.indexOf(o.device), h: o => badge(o.device)},
    {k: "reasons", t: "Why not ANE", c: "rules", on: 1, v: o => ruleIds(o).join(" "), h: why},
    {k: "supported", t: "Supported", c: "sup", w: "132px", v: o => DEV.map(d => o.supported?.[d] ? 1 : 0).join(""),
      h: o => DEV.map(d => `<span class="${o.supported?.[d] ? "y" : "n"}" title="${LABEL[d]}: ${o.supported?.[d] ? "supported" : "not supported"}">${LABEL[d]}</span>`).join("")},
    {k: "inputs", t: "Inputs", w: "16%", v: o => io(o.inputs)},
    {k: "outputs", t: "Outputs", w: "12%", v: o => io(o.outputs)},
    {k: "flops", t: "FLOPs", n: 1, w: "72px", on: 1, v: o => o.flops ?? -1, h: o => human(o.flops)},
    {k: "bytes", t: "Bytes", n: 1, w: "72px", on: 1, v: o => o.bytes ?? -1, h: o => human(o.bytes)},
    ...(hasCost ? [{k: "cost", t: MS, n: 1, w: "76px", on: 1, v: o => o.cost_ms?.[o.device] ?? -1, h: o => num(o.cost_ms?.[o.device])}] : []),
    ...extraKeys.map((x, j) => ({k: "x:" + x, t: x, n: 1, w: "88px", on: j < 2, v: o => o.extra?.[x] ?? -Infinity, h: o => num(o.extra?.[x])})),
  ];
  const STORE = "anedoctor.columns";
  let shown = new Set(COLS.filter(c => c.on).map(c => c.k));
  try { const s = JSON.parse(localStorage.getItem(STORE)); if (Array.isArray(s)) shown = new Set(s.filter(k => COLS.some(c => c.k === k))); } catch (e) { /* no storage */ }
  shown.add("name");
  let cols = [], rows = [], sortK = "index", dir = 1, active = 0, off = new Float64Array(1);
  const ht = new Float32Array(N);  // measured row heights, 0 until a row has been drawn at this width
  const f = {q: "", type: "", rule: "", dev: new Set(DEV)};

  function head() {
    cols = COLS.filter(c => shown.has(c.k));
    $("colgroup", tbl).innerHTML = cols.map(c => `<col class="c-${esc(c.k.replace(/\W/g, "_"))}"${c.w ? ` style="width:${c.w}"` : ""}>`).join("");
    tbl.tHead.innerHTML = `<tr>${cols.map(c => `<th scope="col" data-k="${esc(c.k)}"${c.k === sortK ? ` aria-sort="${dir > 0 ? "ascending" : "descending"}"` : ""}${c.n ? ' class="r"' : ""}><button type="button" title="Sort by ${esc(c.t)}">${esc(c.t)}</button></th>`).join("")}</tr>`;
    ht.fill(0);
  }
  const pick = $("#f-cols fieldset");
  pick.insertAdjacentHTML("beforeend", COLS.map(c => `<label><input type="checkbox" value="${esc(c.k)}"${shown.has(c.k) ? " checked" : ""}${c.k === "name" ? " disabled" : ""}> ${esc(c.t)}</label>`).join(""));
  const picker = $("#f-cols");
  document.addEventListener("click", ev => { if (picker.open && !picker.contains(ev.target)) picker.open = false; });
  picker.addEventListener("keydown", ev => { if (ev.key === "Escape") { picker.open = false; $("summary", picker).focus(); } });
  pick.addEventListener("change", ev => {
    const b = ev.target;
    if (b.checked) shown.add(b.value); else shown.delete(b.value);
    try { localStorage.setItem(STORE, JSON.stringify([...shown])); } catch (e) { /* no storage */ }
    head();
    paint();
  });
  head();
  const opts = (el, counts, label) => el.insertAdjacentHTML("beforeend",
    [...counts].sort((a, b) => b[1] - a[1] || (a[0] > b[0] ? 1 : -1)).map(([k, n]) => `<option value="${esc(k)}">${esc(label(k))} (${n})</option>`).join(""));
  const count = keyss => { const m = new Map(); keyss.forEach(ks => ks.forEach(k => m.set(k, (m.get(k) || 0) + 1))); return m; };
  const titles = {};
  ops.forEach(o => o.reasons.concat(o.notes).forEach(r => { titles[r.rule] ||= r.title; }));
  opts($("#f-type"), count(ops.map(o => [o.type])), k => k);
  opts($("#f-rule"), count(ops.map(ruleIds)), k => titles[k] ? `${k} ${titles[k]}` : k);

  function update() {
    const q = f.q.toLowerCase(), col = COLS.find(c => c.k === sortK);
    rows = [];
    for (let i = 0; i < N; i++) {
      const o = ops[i];
      if (f.dev.has(o.device) && (!q || o.name.toLowerCase().includes(q)) && (!f.type || o.type === f.type) &&
          (!f.rule || o.reasons.some(r => r.rule === f.rule) || o.notes.some(r => r.rule === f.rule))) rows.push(i);
    }
    if (sortK !== "index") {
      const vals = new Map(rows.map(i => [i, col.v(ops[i])]));
      rows.sort((a, b) => { const x = vals.get(a), y = vals.get(b); return (x < y ? -1 : x > y ? 1 : a - b) * (x === y ? 1 : dir); });
    } else if (dir < 0) rows.reverse();
    tbl.setAttribute("aria-rowcount", rows.length + 1);
    $("#f-count").textContent = `Showing ${fmt(rows.length)} of ${fmt(N)} ops`;
    paint();
    if (sel >= 0) { reveal(sel); paint(); }  // keep the selection in view once the rows have their height
  }
  function offsets() {  // off[p]: top of the p-th shown row; rows not drawn yet count as RH (the least a row takes)
    off = new Float64Array(rows.length + 1);
    for (let p = 0; p < rows.length; p++) off[p + 1] = off[p] + (ht[rows[p]] || RH);
  }
  const rowAt = y => { let l = 0, h = rows.length; while (l < h) { const m = (l + h) >> 1; if (off[m + 1] <= y) l = m + 1; else h = m; } return l; };
  function rowHtml(i, p, focusable) {
    const o = ops[i];
    return `<tr class="row dev-${o.device}" data-i="${i}" aria-rowindex="${p + 2}" aria-selected="${i === sel}" tabindex="${focusable ? 0 : -1}">` +
      cols.map(c => `<td${c.c || c.n ? ` class="${c.c || ""}${c.n ? " r" : ""}"` : ""}>${c.h ? c.h(o) : esc(c.v(o))}</td>`).join("") + "</tr>";
  }
  function paint() {
    const had = tbody.contains(document.activeElement);
    offsets();
    const top = wrap.scrollTop, h = Math.max(wrap.clientHeight, 600);
    const a = rowAt(top - BUF), b = Math.min(rows.length, rowAt(top + h + BUF) + 1);
    const slice = rows.slice(a, b), tab = slice.includes(active) ? active : slice[0], end = off[rows.length];
    tbody.innerHTML = `<tr aria-hidden="true" style="height:${off[a]}px"></tr>` + slice.map((i, n) => rowHtml(i, a + n, i === tab)).join("") +
      `<tr aria-hidden="true" class="tail" style="height:${end - off[b]}px"></tr>`;
    let moved = false;  // measure the drawn rows: only the space below them changes, so nothing on screen jumps
    for (const tr of tbody.querySelectorAll("tr.row")) {
      const i = +tr.dataset.i, rh = tr.getBoundingClientRect().height;
      if (Math.abs(ht[i] - rh) > .5) { ht[i] = rh; moved = true; }
    }
    if (moved) { offsets(); $("tr.tail", tbody).style.height = `${off[rows.length] - off[b]}px`; }
    if (had) $(`tr[data-i="${active}"]`, tbody)?.focus({preventScroll: true});
  }
  function reveal(i) {
    const p = rows.indexOf(i);
    if (p < 0) return;
    offsets();
    const y = off[p], h = wrap.clientHeight - RH;
    if (y < wrap.scrollTop || off[p + 1] > wrap.scrollTop + h) wrap.scrollTop = y - h / 2;
  }
  let raf = 0, width = wrap.clientWidth;
  wrap.addEventListener("scroll", () => { if (!raf) raf = requestAnimationFrame(() => { raf = 0; paint(); }); });
  new ResizeObserver(() => { if (wrap.clientWidth !== width) { width = wrap.clientWidth; ht.fill(0); paint(); } }).observe(wrap);
  tbl.tHead.addEventListener("click", ev => {
    const th = ev.target.closest("th");
    if (!th) return;
    dir = th.dataset.k === sortK ? -dir : 1;
    sortK = th.dataset.k;
    tbl.tHead.querySelectorAll("th").forEach(t => t.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    update();
  });
  // A row is selected on press, not on click: a scroll in the frame before the press repaints the virtual rows under
  // the pointer, the release lands on a new row and the browser drops the click. Nor may the press focus the row
  // itself: that would scroll it fully into view and move it under the pointer.
  tbody.addEventListener("mousedown", ev => {
    const tr = ev.button === 0 && ev.target.closest("tr.row");
    if (!tr) return;
    ev.preventDefault();
    active = +tr.dataset.i;
    select(active, "table");
    $(`tr[data-i="${active}"]`, tbody)?.focus({preventScroll: true});
  });
  tbody.addEventListener("keydown", ev => {
    const tr = ev.target.closest("tr.row");
    if (!tr) return;
    const i = +tr.dataset.i;
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); active = i; select(i, "table"); return; }
    const page = Math.floor(wrap.clientHeight / RH) - 1, p = rows.indexOf(i);
    const to = {ArrowDown: p + 1, ArrowUp: p - 1, PageDown: p + page, PageUp: p - page, Home: 0, End: rows.length - 1}[ev.key];
    if (to === undefined) return;
    ev.preventDefault();
    active = rows[Math.max(0, Math.min(rows.length - 1, to))];
    reveal(active);
    paint();
    $(`tr[data-i="${active}"]`, tbody)?.focus({preventScroll: true});
  });
  const search = $("#f-search"), type = $("#f-type"), rule = $("#f-rule"), boxes = [...document.querySelectorAll("#filters input[name=device]")];
  search.addEventListener("input", () => { f.q = search.value; update(); });
  type.addEventListener("change", () => { f.type = type.value; update(); });
  rule.addEventListener("change", () => { f.rule = rule.value; update(); });
  boxes.forEach(b => b.addEventListener("change", () => { f.dev = new Set(boxes.filter(x => x.checked).map(x => x.value)); update(); }));
  $("#f-clear").onclick = () => {
    search.value = type.value = rule.value = ""; boxes.forEach(b => { b.checked = true; });
    Object.assign(f, {q: "", type: "", rule: "", dev: new Set(DEV)});
    update();
  };
  update();
  return {
    show(i, scroll) { active = i; if (scroll) reveal(i); paint(); },
    reveal(i) { reveal(i); paint(); },
    byRule(r) {
      rule.value = r; f.rule = rule.value;
      update();
      $("#h-ops").scrollIntoView({behavior: "smooth", block: "start"});
    },
  };
})();

/* ---------- detail panel ---------- */
const detailEl = $("#detail");
function reason(r, note) {
  const src = /^https?:\/\//.test(r.source || "") ? `<a href="${esc(r.source)}" target="_blank" rel="noopener">${esc(r.source)}</a>` : `<code>${esc(r.source || "–")}</code>`;
  return `<div class="reason${note ? " note" : ""}"><p><button type="button" class="rule" data-rule="${esc(r.rule)}" title="Filter the table by this rule">${esc(r.rule)}</button> <b>${esc(r.title)}</b>` +
    (r.confidence ? ` <abbr class="conf" title="Confidence: ${esc(CONF[r.confidence] || r.confidence)}">${esc(r.confidence)}</abbr>` : "") + `</p>` +
    (r.message ? `<p>${esc(r.message)}</p>` : "") +
    (r.apple_message ? `<p>Apple: <span class="apple">${esc(r.apple_message)}</span></p>` : "") +
    (r.fix ? `<p><b>Try:</b> ${esc(r.fix)}</p>` : "") + `<p class="hint">Source: ${src}</p></div>`;
}
function detail(i) {
  const o = ops[i], cost = o.cost_ms || {}, hasCost = DEV.some(d => cost[d] != null);
  const rows = [["Supported", DEV.map(d => `${LABEL[d]} ${o.supported?.[d] ? "✓" : "✗"}`).join(" · ")],
    ["FLOPs", `${human(o.flops)} <small>(${fmt(o.flops)})</small>`], ["Bytes", human(o.bytes)],
    ...(hasCost ? [[MS, DEV.map(d => `${LABEL[d]} ${cost[d] ?? "–"}`).join(" · ")]] : []),
    ...Object.entries(o.extra || {}).map(([k, v]) => [esc(k), typeof v === "object" ? `<code>${esc(JSON.stringify(v))}</code>` : esc(v)])];
  const seg = (R.segments || []).find(s => s.start <= i && i <= s.end);
  detailEl.innerHTML = `<h3>${esc(o.name)}</h3><p>${badge(o.device)} · <code>${esc(o.type)}</code>${o.source ? ` · <code>${esc(o.source.text)}</code>` : ""} · op ${i}${o.part && (R.model?.parts || []).length > 1 ? ` · part ${esc(o.part)}` : ""}` +
    (seg ? ` · segment ${seg.index} (ops ${seg.start}–${seg.end})` : "") + `</p>` +
    `<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")}</dl>` +
    (o.reasons.length ? `<h4>Why not on the Neural Engine</h4>${o.reasons.map(r => reason(r)).join("")}`
      : o.device !== "ane" ? `<h4>Why not on the Neural Engine</h4><p>No rule fired: placed by the segment cost model.</p>` : "") +
    (o.notes.length ? `<h4>Notes</h4>${o.notes.map(r => reason(r, true)).join("")}` : "") +
    `<h4>Inputs</h4><ul class="io">${(o.inputs || []).map(t => `<li><code>${esc(t.name)}</code> ${esc(tensor(t))} · ${t.const ? "const" : t.producer != null && ops[t.producer] ? "from " + link(t.producer) : "graph input"}</li>`).join("")}</ul>` +
    `<h4>Outputs</h4><ul class="io">${(o.outputs || []).map(t => `<li><code>${esc(t.name)}</code> ${esc(tensor(t))}</li>`).join("")}</ul>` +
    (consumers[i].length ? `<h4>Used by</h4><p>${consumers[i].slice(0, 30).map(link).join(", ")}${consumers[i].length > 30 ? " …" : ""}</p>` : "");
}
detailEl.addEventListener("click", ev => {
  const b = ev.target.closest("button");
  if (b?.dataset.op) select(+b.dataset.op, "detail");
  else if (b?.dataset.rule) table.byRule(b.dataset.rule);
});
document.querySelectorAll(".causes button.rule").forEach(b => { b.onclick = () => table.byRule(b.dataset.rule); });

const m = location.hash.match(/^#op-(\d+)$/);
if (m) select(+m[1], "hash");
window.anedoctor = {report: R, select, reveal: i => table.reveal(i)};
})();
