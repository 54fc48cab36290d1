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

/* ---------- graph: layered layout, contiguous groups by name prefix or block ---------- */
const graph = (() => {
  const host = $("#graph"), chips = $("#graph-open");
  const LEAF = 40, MAXK = 20, MAXNAMED = 64, NW = 158, NH = 40, COLW = 200, ROWH = 52, PAD = 20;
  const groups = new Map(), open = new Set();
  const toks = i => (ops[i].source?.module_path ? `${ops[i].source.module_path}.${ops[i].name}` : ops[i].name).split(/[./:]+|_/);
  function group(lo, hi, label, depth) {
    if (lo === hi) return lo;
    const g = {id: `${lo}-${hi}`, lo, hi, label, depth, kids: null};
    groups.set(g.id, g);
    return g;
  }
  function split(lo, hi, depth) {
    const n = hi - lo + 1, out = [];
    if (n <= LEAF) { for (let i = lo; i <= hi; i++) out.push(i); return out; }
    for (let d = depth + 1; d <= depth + 4; d++) {
      const runs = [];
      for (let i = lo; i <= hi; i++) {
        const key = toks(i).slice(0, d).join(".");
        if (runs.length && runs[runs.length - 1].key === key) runs[runs.length - 1].hi = i;
        else runs.push({key, lo: i, hi: i});
      }
      if (runs.length > MAXNAMED) break;
      if (runs.length > 1) return runs.map(r => group(r.lo, r.hi, r.key, d));
    }
    const size = Math.ceil(n / Math.min(MAXK, Math.ceil(n / LEAF)));
    for (let a = lo; a <= hi; a += size) {
      const b = Math.min(hi, a + size - 1), ta = toks(a), tb = toks(b);
      let c = 0;
      while (c < ta.length - 1 && ta[c] === tb[c]) c++;
      out.push(group(a, b, c && ta.slice(0, c).join(".").length > 2 ? `${ta.slice(0, c).join(".")}.* (${a}–${b})` : `ops ${a}–${b}`, depth));
    }
    return out;
  }
  const kids = g => g.kids || (g.kids = split(g.lo, g.hi, g.depth));
  const partRuns = [];
  ops.forEach((o, i) => { if (i && o.part === ops[i - 1].part) partRuns[partRuns.length - 1].hi = i; else partRuns.push({lo: i, hi: i, part: o.part}); });
  const root = {id: "root", lo: 0, hi: N - 1, depth: 0,
    kids: N && partRuns.length > 1 ? partRuns.map(p => group(p.lo, p.hi, `part ${p.part}`, 0)) : null};

  function visible() {
    const out = [];
    (function walk(list) { for (const x of list) (typeof x === "object" && open.has(x.id)) ? walk(kids(x)) : out.push(x); })(N ? kids(root) : []);
    return out;
  }
  function initial() {
    open.clear();
    const limit = N <= 150 ? Infinity : 60;
    let vis = visible(), grew = true;
    while (grew) {
      grew = false;
      const gs = vis.filter(x => typeof x === "object").sort((a, b) => (b.hi - b.lo) - (a.hi - a.lo));
      for (const g of gs) {
        if (vis.length - 1 + kids(g).length > limit) continue;
        open.add(g.id); vis = visible(); grew = true;
        break;
      }
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
  let pos = new Map();  // op index or group id -> {x, y}
  function render() {
    if (!N) { host.textContent = "No ops."; return; }
    const vis = visible(), owner = new Int32Array(N).fill(-1);
    vis.forEach((v, k) => { if (typeof v === "number") owner[v] = k; else owner.fill(k, v.lo, v.hi + 1); });
    const preds = vis.map(() => new Set());
    ops.forEach((o, i) => (o.inputs || []).forEach(t => {
      const p = t.producer;
      if (p != null && p >= 0 && p < N && owner[p] !== owner[i] && owner[p] < owner[i]) preds[owner[i]].add(owner[p]);
    }));
    for (const r of partRuns.slice(1)) {  // pipeline parts run one after another
      const a = owner[r.lo - 1], b = owner[r.lo];
      if (a < b) preds[b].add(a);
    }
    const layer = vis.map(() => 0), byLayer = [];
    vis.forEach((v, k) => {
      for (const p of preds[k]) layer[k] = Math.max(layer[k], layer[p] + 1);
      (byLayer[layer[k]] ||= []).push(k);
    });
    const Y = new Float64Array(vis.length);
    for (const ks of byLayer) {
      const want = ks.map(k => preds[k].size ? [...preds[k]].reduce((s, p) => s + Y[p], 0) / preds[k].size : 0);
      const order = ks.map((k, n) => n).sort((a, b) => want[a] - want[b] || ks[a] - ks[b]);
      let last = -Infinity;
      for (const n of order) { Y[ks[n]] = Math.max(want[n], last + ROWH); last = Y[ks[n]]; }
    }
    const xy = k => [PAD + layer[k] * COLW, PAD + 14 + Y[k]];
    const W = PAD * 2 + byLayer.length * COLW - (COLW - NW), Hh = PAD * 2 + 14 + Math.max(0, ...Y) + NH;
    const out = [`<svg width="${W}" height="${Hh}" role="group" aria-label="${vis.length} nodes">`];
    // a labelled hull around each innermost expanded group (the chips list the outer ones)
    const key = v => typeof v === "number" ? v : v.id, opened = [...open].map(id => groups.get(id)).filter(Boolean);
    opened.filter(g => !opened.some(h => h !== g && h.lo >= g.lo && h.hi <= g.hi)).forEach(g => {
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      vis.forEach((v, k) => {
        const lo = typeof v === "number" ? v : v.lo;
        if (lo < g.lo || lo > g.hi) return;
        const [x, y] = xy(k);
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + NW); y1 = Math.max(y1, y + NH);
      });
      if (x0 < Infinity) out.push(`<g class="hull"><rect x="${x0 - 8}" y="${y0 - 18}" width="${x1 - x0 + 16}" height="${y1 - y0 + 26}" rx="8"/><text x="${x0 - 2}" y="${y0 - 6}">${esc(tail(g.label, 60))}</text></g>`);
    });
    preds.forEach((ps, k) => ps.forEach(p => {
      const [xa, ya] = xy(p), [xb, yb] = xy(k), x1 = xa + NW, y1 = ya + NH / 2, y2 = yb + NH / 2;
      out.push(`<path class="edge" data-a="${key(vis[p])}" data-b="${key(vis[k])}" d="M${x1} ${y1}C${x1 + 30} ${y1} ${xb - 30} ${y2} ${xb} ${y2}"/>`);
    }));
    pos = new Map();
    vis.forEach((v, k) => {
      const [x, y] = xy(k);
      pos.set(key(v), {x, y});
      if (typeof v === "number") {
        const o = ops[v];
        out.push(`<g class="node dev-${o.device}${v === sel ? " sel" : ""}" data-op="${v}" role="button" tabindex="0" transform="translate(${x},${y})" aria-label="op ${v} ${esc(o.name)}, ${esc(o.type)}, ${LABEL[o.device] || o.device}">` +
          `<title>${esc(o.name)}</title><rect class="box" width="${NW}" height="${NH}" rx="6"/><rect class="p-${o.device}" x="1" y="1" width="9" height="${NH - 2}" rx="3"/>` +
          `<text x="16" y="16">${esc(tail(o.name, 22))}</text><text class="sub" x="16" y="31">${LABEL[o.device] || o.device} · ${esc(tail(o.type, 16))}</text></g>`);
      } else {
        const m = mix(v.lo, v.hi + 1), n = v.hi - v.lo + 1, maj = DEV[m.indexOf(Math.max(...m))];
        let bx = 10;
        const bar = DEV.map((d, j) => { const w = (NW - 20) * m[j] / n, r = w ? `<rect class="p-${d}" x="${bx}" y="${NH - 8}" width="${w}" height="5"/>` : ""; bx += w; return r; }).join("");
        const off = n - m[0];
        out.push(`<g class="node group dev-${maj}" data-g="${v.id}" role="button" tabindex="0" aria-expanded="false" transform="translate(${x},${y})" aria-label="Group ${esc(v.label)}: ${n} ops, ${off} not on the Neural Engine. Press Enter to expand.">` +
          `<title>${esc(v.label)} (ops ${v.lo}–${v.hi})</title><rect class="box" width="${NW}" height="${NH}" rx="6"/><text x="10" y="15">▸ ${esc(tail(v.label, 22))}</text>` +
          `<text class="sub" x="10" y="28">${n} ops${off ? ` · ${off} off ANE` : ""}</text>${bar}</g>`);
      }
    });
    host.innerHTML = out.join("") + "</svg>";
    chips.innerHTML = opened.sort((a, b) => a.lo - b.lo || b.hi - a.hi)
      .map(g => `<button type="button" data-close="${g.id}" aria-label="Collapse ${esc(g.label)}">▾ ${esc(tail(g.label, 40))} ✕</button>`).join("");
    hot();
  }
  function hot() {
    host.querySelectorAll(".sel").forEach(e => e.classList.remove("sel"));
    host.querySelectorAll(".edge.hot").forEach(e => e.classList.remove("hot"));
    if (sel < 0) return;
    $(`.node[data-op="${sel}"]`, host)?.classList.add("sel");
    host.querySelectorAll(`.edge[data-a="${sel}"],.edge[data-b="${sel}"]`).forEach(e => e.classList.add("hot"));
  }
  function activate(n) {
    if (n.dataset.op) return select(+n.dataset.op, "graph");
    open.add(n.dataset.g);
    render();
    const g = groups.get(n.dataset.g), first = kids(g)[0];
    host.querySelector(typeof first === "number" ? `.node[data-op="${first}"]` : `.node[data-g="${first.id}"]`)?.focus({preventScroll: true});
  }
  host.addEventListener("click", ev => { const n = ev.target.closest(".node"); if (n) activate(n); });
  host.addEventListener("keydown", ev => {
    const n = ev.target.closest(".node");
    if (n && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); activate(n); }
  });
  chips.addEventListener("click", ev => {
    const b = ev.target.closest("[data-close]");
    if (!b) return;
    const g = groups.get(b.dataset.close);
    for (const id of [...open]) { const h = groups.get(id); if (h && h.lo >= g.lo && h.hi <= g.hi) open.delete(id); }
    render();
  });
  $("#graph-reset").onclick = () => { initial(); render(); };
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

/* ---------- ops table: filter, sort, virtual rows ---------- */
const table = (() => {
  const wrap = $("#table-wrap"), tbl = $("#ops-table"), tbody = $("tbody", tbl), RH = 30;
  const extraKeys = [...new Set(ops.flatMap(o => Object.keys(o.extra || {})))];
  const hasCost = ops.some(o => o.cost_ms && o.cost_ms[o.device] != null);
  const ruleIds = o => [...new Set(o.reasons.concat(o.notes).map(r => r.rule))];
  const io = ts => (ts || []).filter(t => !t.const).map(tensor).join(", ");
  const num = v => typeof v === "number" ? (Number.isInteger(v) ? fmt(v) : String(+v.toPrecision(4))) : esc(v ?? "–");
  const COLS = [
    {k: "index", t: "#", n: 1, v: o => o.index},
    {k: "name", t: "Name", v: o => o.name, c: "name", h: o => `<span title="${esc(o.name)}">${esc(o.name)}</span>`},
    {k: "type", t: "Type", v: o => o.type},
    {k: "device", t: "Device", v: o => DEV.indexOf(o.device), h: o => badge(o.device)},
    {k: "reasons", t: "Why not ANE", c: "rules", v: o => ruleIds(o).join(" "),
      h: o => `<span title="${esc(o.reasons[0]?.message || "")}">${ruleIds(o).map(r => `<code>${esc(r)}</code>`).join("")}${esc(o.reasons[0]?.message || "")}</span>`},
    {k: "supported", t: "Supported", c: "sup", v: o => DEV.map(d => o.supported?.[d] ? 1 : 0).join(""),
      h: o => DEV.map(d => `<span class="${o.supported?.[d] ? "y" : "n"}" title="${LABEL[d]}: ${o.supported?.[d] ? "supported" : "not supported"}">${LABEL[d]}</span>`).join("")},
    {k: "inputs", t: "Inputs", v: o => io(o.inputs)},
    {k: "outputs", t: "Outputs", v: o => io(o.outputs)},
    {k: "flops", t: "FLOPs", n: 1, v: o => o.flops ?? -1, h: o => human(o.flops)},
    {k: "bytes", t: "Bytes", n: 1, v: o => o.bytes ?? -1, h: o => human(o.bytes)},
    ...(hasCost ? [{k: "cost", t: MS, n: 1, v: o => o.cost_ms?.[o.device] ?? -1, h: o => num(o.cost_ms?.[o.device])}] : []),
    ...extraKeys.map(x => ({k: "x:" + x, t: x, n: 1, v: o => o.extra?.[x] ?? -Infinity, h: o => num(o.extra?.[x])})),
  ];
  let rows = [], sortK = "index", dir = 1, active = 0;
  const f = {q: "", type: "", rule: "", dev: new Set(DEV)};

  tbl.tHead.innerHTML = `<tr>${COLS.map(c => `<th scope="col" data-k="${c.k}"${c.k === sortK ? ' aria-sort="ascending"' : ""}${c.n ? ' class="r"' : ""}><button type="button">${esc(c.t)}</button></th>`).join("")}</tr>`;
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
  function rowHtml(i, p, focusable) {
    const o = ops[i];
    return `<tr class="row dev-${o.device}" data-i="${i}" aria-rowindex="${p + 2}" aria-selected="${i === sel}" tabindex="${focusable ? 0 : -1}">` +
      COLS.map(c => `<td${c.c || c.n ? ` class="${c.c || ""}${c.n ? " r" : ""}"` : ""}>${c.h ? c.h(o) : esc(c.v(o))}</td>`).join("") + "</tr>";
  }
  function paint() {
    const had = tbody.contains(document.activeElement);
    const top = wrap.scrollTop, h = Math.max(wrap.clientHeight, 600);
    const a = Math.max(0, Math.floor(top / RH) - 10), b = Math.min(rows.length, Math.ceil((top + h) / RH) + 10);
    const slice = rows.slice(a, b), tab = slice.includes(active) ? active : slice[0];
    tbody.innerHTML = `<tr aria-hidden="true" style="height:${a * RH}px"></tr>` + slice.map((i, n) => rowHtml(i, a + n, i === tab)).join("") +
      `<tr aria-hidden="true" style="height:${(rows.length - b) * RH}px"></tr>`;
    if (had) $(`tr[data-i="${active}"]`, tbody)?.focus({preventScroll: true});
  }
  function reveal(i) {
    const p = rows.indexOf(i);
    if (p < 0) return;
    const y = p * RH, h = wrap.clientHeight - RH;
    if (y < wrap.scrollTop || y > wrap.scrollTop + h - RH) wrap.scrollTop = y - h / 2;
  }
  let raf = 0;
  wrap.addEventListener("scroll", () => { if (!raf) raf = requestAnimationFrame(() => { raf = 0; paint(); }); });
  tbl.tHead.addEventListener("click", ev => {
    const th = ev.target.closest("th");
    if (!th) return;
    dir = th.dataset.k === sortK ? -dir : 1;
    sortK = th.dataset.k;
    tbl.tHead.querySelectorAll("th").forEach(t => t.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    update();
  });
  tbody.addEventListener("click", ev => { const tr = ev.target.closest("tr.row"); if (tr) { active = +tr.dataset.i; select(active, "table"); } });
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
window.anedoctor = {report: R, select};
})();
