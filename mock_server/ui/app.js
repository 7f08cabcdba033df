// avala-mock dashboard: a live view of the mock fed by /_mock/dashboard/stream/. Server strings reach
// the DOM only via textContent/attributes; no failure reaches the console (a toast shows it instead).

// ---------------------------------------------------------------- helpers
const $ = (id) => document.getElementById(id);
const SVG_NS = 'http://www.w3.org/2000/svg';

// Build an element: `text` sets textContent, other keys become attributes (null/false skipped).
const el = (tag, props, ...kids) => fill(document.createElement(tag), props, kids);
const svgEl = (tag, props, ...kids) => fill(document.createElementNS(SVG_NS, tag), props, kids);

function fill(node, props = {}, kids = []) {
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const kid of kids) if (kid != null) node.append(kid); // strings become text nodes
  return node;
}

// Touch the DOM only on change: keeps text selections and avoids needless layout every second.
const setText = (node, text) => { if (node.textContent !== String(text)) node.textContent = String(text); };
const setAttr = (node, name, v) => { if (node.getAttribute(name) !== String(v)) node.setAttribute(name, String(v)); };

// Order `parent`'s children as `nodes`, moving only misplaced ones (reused rows never flicker).
function syncChildren(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}

let toastTimer = 0;
function toast(message) {
  Object.assign($('toast'), { textContent: message, hidden: false });
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { $('toast').hidden = true; }, 6000);
}

const report = (err) => toast(`dashboard: ${err && err.message ? err.message : err}`);

// Wrap every handler and timer callback: a throw or a rejection becomes a toast, never uncaught.
const guard = (fn) => (...args) => {
  try { Promise.resolve(fn(...args)).catch(report); } catch (err) { report(err); }
};
const on = (id, type, fn) => $(id).addEventListener(type, guard(fn));

const num = (v, fallback = 0) => (Number.isFinite(Number(v)) ? Number(v) : fallback);
const clamp01 = (v) => Math.min(1, Math.max(0, num(v)));
const list = (v) => (Array.isArray(v) ? v : []);
const dash = (v) => (v == null || v === '' ? '—' : String(v));
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// Virtual ISO timestamps shortened to "YYYY-MM-DD HH:MM:SS" (the full value goes in a title).
const fmtIso = (iso) => (iso ? String(iso).slice(0, 19).replace('T', ' ') : '—');
// Journal `at` is wall-clock epoch seconds.
const fmtWall = (epoch) => new Date(num(epoch) * 1000).toLocaleTimeString([], { hour12: false });

function fmtDuration(seconds) {
  if (seconds == null || !Number.isFinite(Number(seconds))) return '—';
  const t = Math.max(0, Math.round(Number(seconds)));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
  return [h && `${h}h`, (h || m) && `${m}m`, `${s}s`].filter(Boolean).join(' ');
}

// Shell-style glob (* and ?), whole-string and case-sensitive like the server's fnmatchcase.
function globMatch(pattern, value) {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(String(value ?? ''));
}

// ---------------------------------------------------------------- API access
const TOKEN_KEY = 'avala-mock-token';
const token = readToken();

function readToken() {
  const fromUrl = new URLSearchParams(location.search).get('token');
  try {
    if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
    return fromUrl || sessionStorage.getItem(TOKEN_KEY) || '';
  } catch { return fromUrl || ''; } // storage may be disabled: the URL token still works here
}

function detailOf(data, fallback) {
  const detail = data && data.detail;
  return detail == null ? fallback || 'request failed' : typeof detail === 'string' ? detail : JSON.stringify(detail);
}

// Never throws: resolves to {ok, status, data}; failures toast the JSON `detail` unless `quiet`.
async function api(path, { method = 'GET', body, quiet = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, cache: 'no-store', body: body && JSON.stringify(body) });
  } catch {
    if (!quiet) toast(`${method} ${path}: network error`);
    return { ok: false, status: 0, data: null };
  }
  let data = null;
  try { data = await res.json(); } catch { /* 204 or a non-JSON body */ }
  if (!res.ok && !quiet) toast(`${method} ${path} → ${res.status}: ${detailOf(data, res.statusText)}`);
  return { ok: res.ok, status: res.status, data };
}

// ---------------------------------------------------------------- state, header and clock
let lastState = null;

async function refreshState() {
  const r = await api('/_mock/dashboard/state/');
  if (r.ok && r.data) applyState(r.data);
}

function applyState(state) {
  lastState = state;
  renderClock(state.clock);
  setText($('scenario-name'), dash(state.scenario));
  $('strict-flag').hidden = !state.strict;
  const j = state.journal || {};
  setText($('journal-count'), `journal ${num(j.total)} (held ${num(j.held)})`);
  if (num(j.held, 1) === 0 && $('journal-body').children.length) setJournalRows([]); // it was emptied
  renderJobs(list(state.jobs));
  maybeRefreshGallery(list(state.jobs));
}

function renderClock(clock) {
  if (!clock) return;
  setText($('clock-mode'), clock.mode);
  setText($('clock-scale'), `×${clock.scale}`);
  setText($('clock-now'), clock.now);
  setAttr($('clock-now'), 'datetime', clock.now);
  $('clock-paused').hidden = !clock.paused;
  if (document.activeElement !== $('scale-input')) $('scale-input').value = clock.scale;
}

function setStreamStatus(text, kind) {
  setText($('stream-status'), text);
  $('stream-status').className = `stream-status ${kind}`; // colours the pill
}

// What each clock mode allows (the server answers 409 otherwise). The browser logs any 4xx as a
// console error, so the fresh state is checked first and a refusal is explained in the toast instead.
const running = (c) => !c.paused && (c.mode === 'real' || c.mode === 'scaled');
const CLOCK_RULES = {
  advance: [(c) => c.mode === 'manual' || c.paused, 'only a manual or paused clock can be advanced'],
  pause: [running, 'only a running real or scaled clock can be paused'],
  resume: [(c) => c.paused, 'the clock is not paused'],
  scale: [running, 'only a running real or scaled clock has a scale'],
};

async function clockAction(action, body) {
  await refreshState();
  const clock = lastState && lastState.clock;
  const [allowed, why] = CLOCK_RULES[action];
  if (clock && !allowed(clock)) return toast(`Clock ${action}: ${why} (this one is ${clock.mode}${clock.paused ? ', paused' : ''}).`);
  const r = await api(`/_mock/clock/${action}/`, { method: 'POST', body });
  if (r.ok && r.data && r.data.now) renderClock(r.data); // each answers the clock object
  return refreshState(); // the rest of the page shouldn't wait up to a second for the stream
}

function advance(seconds) {
  if (!(seconds > 0)) return toast('Advance: enter a positive number of seconds.');
  return clockAction('advance', { seconds });
}

function bindHeader() {
  on('advance-form', 'submit', (ev) => {
    ev.preventDefault();
    return advance(num($('advance-seconds').value, NaN));
  });
  document.querySelectorAll('[data-advance]').forEach((b) => b.addEventListener('click', guard(() => advance(num(b.dataset.advance)))));
  on('pause-button', 'click', () => clockAction('pause', {}));
  on('resume-button', 'click', () => clockAction('resume', {}));
  on('scale-form', 'submit', (ev) => {
    ev.preventDefault();
    const scale = num($('scale-input').value, NaN);
    $('scale-input').blur(); // hand the field back to the stream updates
    if (!(scale > 0)) return toast('Scale: enter a number above 0.');
    return clockAction('scale', { scale });
  });
}

// ---------------------------------------------------------------- jobs
const jobRows = new Map(); // job uid → {row, parts}
const jobGroups = new Map(); // "org/project" → {box, title, count, rows}

function renderJobs(jobs) {
  const grouped = new Map(); // insertion order = newest job first, as the API sorts them
  for (const job of jobs) {
    const entry = jobRows.get(job.uid) || createJobRow(job.uid);
    updateJobRow(entry, job);
    const key = `${job.organization}/${job.project_uid}`;
    if (!grouped.has(key)) grouped.set(key, { job, rows: [] });
    grouped.get(key).rows.push(entry.row);
  }
  const live = new Set(jobs.map((j) => j.uid));
  for (const [uid, entry] of jobRows) if (!live.has(uid)) { entry.row.remove(); jobRows.delete(uid); }
  for (const key of jobGroups.keys()) if (!grouped.has(key)) jobGroups.delete(key);
  const boxes = [...grouped].map(([key, { job, rows }]) => {
    const group = jobGroups.get(key) || createGroup(key);
    setText(group.title, `${job.organization} · ${job.project_name || job.project_uid}`);
    setText(group.count, plural(rows.length, 'job'));
    syncChildren(group.rows, rows);
    return group.box;
  });
  syncChildren($('jobs'), boxes);
  $('jobs-empty').hidden = jobs.length > 0;
  setText($('jobs-count'), jobs.length || '');
}

function createGroup(key) {
  const group = { title: el('span', { class: 'group-title' }), count: el('span', { class: 'muted' }), rows: el('div') };
  group.box = el('div', { class: 'job-group' }, el('h3', {}, group.title, ' ', group.count), group.rows);
  jobGroups.set(key, group);
  return group;
}

function createJobRow(uid) {
  const parts = {
    badge: el('span', { class: 'badge' }),
    title: el('span', { class: 'job-title' }),
    dry: el('span', { class: 'badge dry', text: 'dry run' }),
    created: el('span', { class: 'muted' }),
    progress: el('progress', { 'data-testid': 'job-progress', max: 100, value: 0 }),
    pct: el('span', { class: 'pct' }),
    counts: el('span'),
    eta: el('span', { class: 'eta' }),
  };
  const open = el('button', { type: 'button', class: 'small', 'data-testid': 'open-gallery', text: 'Gallery' });
  const row = el('div', { class: 'job-row', 'data-testid': 'job-row', 'data-job-uid': uid, tabindex: 0 },
    el('div', { class: 'line' }, parts.badge, parts.title, parts.dry, el('span', { class: 'grow' }), parts.created, open),
    el('div', { class: 'line' }, parts.progress, parts.pct),
    el('div', { class: 'line small' }, parts.counts, el('span', { class: 'grow' }), parts.eta));
  // The button's click bubbles up here, so this one listener serves both.
  row.addEventListener('click', guard(() => openGallery(uid)));
  row.addEventListener('keydown', guard((ev) => ev.key === 'Enter' && ev.target === row && openGallery(uid)));
  jobRows.set(uid, { row, parts });
  return jobRows.get(uid);
}

function updateJobRow({ row, parts }, job) {
  setAttr(row, 'data-status', job.status);
  setAttr(row, 'data-processed', num(job.processed_items));
  row.classList.toggle('selected', job.uid === gallery.uid);
  setText(parts.badge, job.status);
  parts.badge.className = `badge status-${job.status}`;
  setText(parts.title, `${job.model_type} · ${job.uid}`);
  parts.dry.hidden = !job.dry_run;
  setText(parts.created, `created ${fmtIso(job.created_at)}`);
  setAttr(parts.created, 'title', job.created_at || '');
  const pct = clamp01(num(job.progress_pct) / 100) * 100;
  if (parts.progress.value !== pct) parts.progress.value = pct;
  setText(parts.pct, `${pct.toFixed(0)}%`);
  setText(parts.counts, `${num(job.processed_items)}/${num(job.total_items)} processed · ✓ ${num(job.successful_items)}`
    + ` · ✗ ${num(job.failed_items)} · skipped ${num(job.skipped_items)}`);
  const done = ['completed', 'failed', 'cancelled'].includes(job.status);
  setText(parts.eta, done ? `ended ${fmtIso(job.completed_at)}` : `ETA ${fmtDuration(job.eta_seconds)} (virtual)`);
  setAttr(parts.eta, 'title', (done ? job.completed_at : job.eta_at) || '');
}

// ---------------------------------------------------------------- gallery
const gallery = { uid: null, offset: 0, limit: 12, data: null, threshold: 0.5, request: 0, loadedAt: 0, processed: -1 };
const galleryCards = new Map(); // item uid → {card, frame, img, svg, caption}

async function openGallery(uid, offset = 0) {
  const fresh = uid !== gallery.uid;
  const request = ++gallery.request; // the latest click or page wins over slower answers
  Object.assign(gallery, { uid, offset: Math.max(0, offset), loadedAt: Date.now() });
  if (fresh) {
    for (const { row } of jobRows.values()) row.classList.toggle('selected', row.dataset.jobUid === uid);
    setText($('gallery-title'), `loading ${uid}…`);
  }
  const query = new URLSearchParams({ offset: gallery.offset, limit: gallery.limit });
  const r = await api(`/_mock/dashboard/jobs/${encodeURIComponent(uid)}/gallery/?${query}`);
  if (request !== gallery.request) return;
  if (!r.ok || !r.data) {
    if (fresh) setText($('gallery-title'), `${uid} (unavailable)`);
    return;
  }
  gallery.data = r.data;
  const job = r.data.job || {};
  gallery.processed = num(job.processed_items, -1);
  if (fresh) {
    gallery.threshold = job.confidence_threshold == null ? 0.5 : clamp01(job.confidence_threshold);
    $('threshold-slider').value = gallery.threshold;
  }
  renderGallery();
}

// Re-read the open page while its job progresses (at most every 3 s), so new drafts show up.
function maybeRefreshGallery(jobs) {
  if (!gallery.data || Date.now() - gallery.loadedAt < 3000) return;
  const job = jobs.find((j) => j.uid === gallery.uid);
  if (job && num(job.processed_items) !== gallery.processed) openGallery(gallery.uid, gallery.offset).catch(report);
}

function renderGallery() {
  const { data } = gallery;
  const job = data.job || {};
  setText($('gallery-title'), `${job.model_type || ''} · ${job.uid || gallery.uid} · ${job.status || ''}`);
  const items = list(data.items);
  const cards = items.map((item) => updateCard(galleryCards.get(item.uid) || createCard(item), item));
  const keep = new Set(items.map((i) => i.uid));
  for (const uid of galleryCards.keys()) if (!keep.has(uid)) galleryCards.delete(uid);
  syncChildren($('gallery-grid'), cards);
  const total = num(data.total_items);
  const shown = items.length ? `${gallery.offset + 1}–${gallery.offset + items.length} of ${total}` : `no items here (${total} processed)`;
  setText($('gallery-range'), shown);
  $('gallery-prev').disabled = gallery.offset <= 0;
  $('gallery-next').disabled = gallery.offset + gallery.limit >= total;
  applyThreshold();
}

function createCard({ uid, key }) {
  const img = el('img', { 'data-testid': 'gallery-image', loading: 'eager', decoding: 'async', alt: key || uid });
  img.addEventListener('error', () => img.classList.add('broken')); // the browser reports it already
  const svg = svgEl('svg', { class: 'overlay', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
  const frame = el('div', { class: 'frame' }, img, svg);
  const caption = el('figcaption');
  const card = el('figure', { class: 'gallery-card', 'data-testid': 'gallery-item', 'data-item-uid': uid }, frame, caption);
  galleryCards.set(uid, { card, frame, img, svg, caption });
  return galleryCards.get(uid);
}

function updateCard({ card, frame, img, svg, caption }, item) {
  const w = Math.max(1, num(item.width, 1)), h = Math.max(1, num(item.height, 1));
  const drafts = list(item.drafts), truth = list(item.ground_truth);
  if (img.getAttribute('src') !== item.url) img.setAttribute('src', item.url);
  frame.style.aspectRatio = `${w} / ${h}`; // the frame is the image's box: the overlay matches it
  setAttr(svg, 'viewBox', `0 0 ${w} ${h}`);
  // Ground truth first so drafts paint on top; rebuilt together with the count so both agree.
  svg.replaceChildren(...truth.map(truthShape), ...drafts.map(draftShape));
  setAttr(card, 'data-draft-count', drafts.length);
  card.classList.toggle('failed', !!item.failed); // the model endpoint failed on this item
  caption.replaceChildren(el('span', { class: 'key', text: item.key || item.uid, title: item.key || item.uid }),
    el('span', { class: 'muted', text: `${item.failed ? 'failed · ' : ''}${plural(drafts.length, 'draft')} · ${truth.length} GT` }));
  return card;
}

// Red at 0 → green at 1, so low-confidence drafts stand out.
const confidenceColour = (c) => `hsl(${Math.round(c * 120)}, 85%, 42%)`;

function rectOf(box, attrs, title) {
  const [x, y, w, h] = list(box).length === 4 ? box : [0, 0, 0, 0]; // degenerate but still one shape
  return svgEl('rect', { ...attrs, x: num(x), y: num(y), width: Math.max(0, num(w)), height: Math.max(0, num(h)) },
    svgEl('title', {}, title));
}

function draftShape(draft) {
  const conf = clamp01(draft.confidence);
  const colour = confidenceColour(conf);
  const accepted = typeof draft.accepted === 'boolean' ? String(draft.accepted) : null; // false would be skipped
  const attrs = { class: 'draft', stroke: colour, fill: colour, 'data-confidence': conf, 'data-accepted': accepted };
  const title = `${draft.label} ${(conf * 100).toFixed(0)}%`;
  const points = list(draft.points);
  if (points.length && (draft.kind === 'polygon' || !Array.isArray(draft.box))) {
    const coords = points.map((p) => `${num(p[0])},${num(p[1])}`).join(' ');
    return svgEl('polygon', { ...attrs, points: coords }, svgEl('title', {}, title));
  }
  return rectOf(draft.box, attrs, title);
}

const truthShape = (gt) => rectOf(gt.box, { class: 'gt' }, `ground truth: ${gt.label}`);

function applyThreshold() {
  const t = gallery.threshold;
  setText($('threshold-value'), t.toFixed(2));
  // At the job's own threshold trust the server's `accepted`: it compared unrounded confidences.
  const jobT = gallery.data && gallery.data.job && gallery.data.job.confidence_threshold;
  const atJob = jobT != null && Math.abs(t - num(jobT)) < 1e-9;
  for (const shape of $('gallery-grid').querySelectorAll('.draft')) {
    const accepted = shape.getAttribute('data-accepted');
    const below = atJob && accepted ? accepted === 'false' : num(shape.getAttribute('data-confidence')) < t;
    shape.classList.toggle('below', below);
  }
  // Precision/recall at the curve point nearest the slider.
  const distance = (p) => Math.abs(num(p.threshold) - t);
  const best = list(gallery.data && gallery.data.pr_curve).reduce((a, p) => (!a || distance(p) < distance(a) ? p : a), null);
  setText($('pr-precision'), best ? num(best.precision).toFixed(3) : '—');
  setText($('pr-recall'), best ? num(best.recall).toFixed(3) : '—');
  setText($('pr-counts'), best ? `${num(best.tp)} / ${num(best.fp)} / ${num(best.fn)}` : '—');
  setText($('pr-at'), best ? `at threshold ${num(best.threshold).toFixed(2)}` : '');
}

function bindGallery() {
  const onSlide = () => { gallery.threshold = clamp01($('threshold-slider').value); applyThreshold(); };
  on('threshold-slider', 'input', onSlide);
  on('threshold-slider', 'change', onSlide);
  on('show-gt', 'change', () => $('gallery-grid').classList.toggle('hide-gt', !$('show-gt').checked));
  on('gallery-prev', 'click', () => gallery.uid && openGallery(gallery.uid, gallery.offset - gallery.limit));
  on('gallery-next', 'click', () => gallery.uid && openGallery(gallery.uid, gallery.offset + gallery.limit));
}

// ---------------------------------------------------------------- journal
const JOURNAL_FETCH = 200;
const JOURNAL_MAX = 500;
const journal = { lastSeq: 0, filters: {} }; // rows are shown newest first

const FILTER_INPUTS = { method: 'f-method', status: 'f-status', path: 'f-path', operation_id: 'f-operation', organization: 'f-organization' };
const readFilters = () => {
  const f = Object.fromEntries(Object.entries(FILTER_INPUTS).map(([key, id]) => [key, $(id).value.trim()]));
  return { ...f, method: f.method.toUpperCase(), status: f.status.toLowerCase() };
};

// The same filters client side: the live tail arrives unfiltered, and "4xx" is ours, not the server's.
function matches(e, f) {
  return (!f.method || e.method === f.method)
    && (!f.status || globMatch(f.status.replace(/x/g, '?'), e.status))
    && (!f.path || globMatch(f.path, e.path))
    && (!f.operation_id || (e.operation_id != null && globMatch(f.operation_id, e.operation_id)))
    && (!f.organization || globMatch(f.organization, e.organization ?? ''));
}

async function loadJournal() {
  const f = readFilters();
  journal.filters = f;
  const query = new URLSearchParams({ limit: JOURNAL_FETCH });
  for (const [key, value] of Object.entries(f)) {
    if (value && (key !== 'status' || /^\d+$/.test(value))) query.set(key, value); // status: integers only
  }
  const since = journal.lastSeq;
  const r = await api(`/_mock/journal/?${query}`);
  if (!r.ok || !r.data) return;
  const fetched = list(r.data.entries).filter((e) => matches(e, f)).reverse();
  const top = fetched.length ? num(fetched[0].seq) : 0;
  journal.lastSeq = Math.max(journal.lastSeq, top);
  // Keep the tail rows that arrived (already filtered by `f`) while the request was in flight.
  const newer = [...$('journal-body').children].filter((tr) => num(tr.dataset.seq) > Math.max(since, top));
  setJournalRows([...newer, ...fetched.map(journalRow)]);
}

function setJournalRows(rows) {
  $('journal-body').replaceChildren(...rows.slice(0, JOURNAL_MAX));
  setText($('journal-shown'), `${$('journal-body').children.length} shown`);
}

function addTail(entries) {
  const fresh = list(entries).filter((e) => num(e.seq) > journal.lastSeq);
  for (const e of fresh) journal.lastSeq = Math.max(journal.lastSeq, num(e.seq));
  if ($('journal-pause').checked) return; // un-pausing reloads from the endpoint
  const shown = fresh.filter((e) => matches(e, journal.filters)).reverse();
  if (!shown.length) return;
  const body = $('journal-body');
  body.prepend(...shown.map(journalRow));
  while (body.children.length > JOURNAL_MAX) body.lastElementChild.remove();
  setText($('journal-shown'), `${body.children.length} shown`);
}

function journalRow(e) {
  const status = num(e.status);
  const injected = num(e.injected_latency_ms) ? ` (+${num(e.injected_latency_ms).toFixed(0)})` : '';
  return el('tr', { 'data-testid': 'journal-row', 'data-operation-id': e.operation_id ?? '', 'data-seq': e.seq },
    el('td', { class: 'num muted', text: e.seq }),
    el('td', { class: 'nowrap', text: fmtWall(e.at) }),
    el('td', { text: e.method }),
    el('td', { class: 'path', text: e.path, title: e.path }),
    el('td', { text: dash(e.operation_id) }),
    el('td', {}, el('span', { class: `http http-${Math.floor(status / 100)}xx`, text: status })),
    el('td', { class: 'num', text: `${num(e.latency_ms).toFixed(1)}${injected}` }),
    el('td', { text: e.organization ?? '' }),
    el('td', { class: e.fault ? 'fault' : null, text: e.fault ?? '' }));
}

function bindJournal() {
  const reload = (ev) => { ev.preventDefault(); return loadJournal(); };
  on('journal-filters', 'submit', reload);
  on('journal-filters', 'change', reload);
  on('journal-pause', 'change', () => !$('journal-pause').checked && loadJournal()); // catch up
}

// ---------------------------------------------------------------- slower panels (every 5 s)
const cell = (text, cls) => el('td', { class: cls, text: dash(text) });

// Small tables, redrawn whole every 5 s; `empty` fills the table when there are no rows.
function fillTable(id, items, toRow, empty) {
  const rows = items.map(toRow);
  const span = $(id).closest('table').querySelectorAll('th').length;
  $(id).replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: span, class: 'empty', text: empty }))]));
}

async function loadBuckets() {
  const r = await api('/_mock/dashboard/buckets/');
  if (!r.ok || !r.data) return;
  setText($('limits-summary'), `default ${num(r.data.limit)} per ${num(r.data.window)} s`);
  fillTable('buckets-body', list(r.data.buckets), (b) => el('tr', {},
    cell(b.organization), cell(b.client),
    el('td', { class: 'nowrap' },
      el('meter', { min: 0, max: 1, low: 0.2, optimum: 1, value: num(b.limit) ? clamp01(num(b.remaining) / num(b.limit)) : 0 }),
      ` ${Math.floor(num(b.remaining))}/${num(b.limit)}`),
    cell(fmtIso(b.reset_at), 'nowrap')), 'no buckets yet');
}

async function loadDeliveries() {
  const r = await api('/_mock/dashboard/deliveries/?limit=50');
  if (!r.ok || !r.data) return;
  fillTable('deliveries-body', list(r.data.deliveries), (d) => el('tr', {},
    cell(fmtIso(d.created_at), 'nowrap'), cell(d.organization), cell(d.event_type),
    el('td', { class: 'path', text: dash(d.target_host), title: d.webhook || '' }),
    el('td', {}, el('span', { class: `badge delivery-${d.status}`, text: dash(d.status) })),
    cell(d.attempts, 'num'), cell(d.response_status, 'num'), cell(fmtIso(d.next_retry_at), 'nowrap')), 'no deliveries yet');
}

async function loadPre(path, target, pick = (d) => d) {
  const r = await api(path);
  if (!r.ok) return;
  const value = pick(r.data);
  setText($(target), typeof value === 'string' ? value : JSON.stringify(value, null, 2));
}

function showStrict(enabled) {
  [$('strict-off').hidden, $('strict-on').hidden] = [enabled, !enabled];
  if (!enabled) setText($('coverage-summary'), '');
}

// Asked only when the state says strict is on: otherwise the 404/409 would log a console error.
async function loadStrict() {
  if (!lastState) return;
  if (!lastState.strict) return showStrict(false);
  const [v, c] = await Promise.all([api('/_mock/violations/', { quiet: true }), api('/_mock/coverage/', { quiet: true })]);
  const off = (r) => r.status === 404 || r.status === 409 || (r.data && r.data.enabled === false);
  if (off(v) || off(c)) return showStrict(false);
  if (!v.ok || !c.ok) return toast(`strict mode: ${detailOf((v.ok ? c : v).data, 'unavailable')}`);
  showStrict(true);
  fillTable('violations-body', list(v.data.violations), (x) => el('tr', {},
    cell(x.method), el('td', { class: 'path', text: dash(x.path), title: x.path || '' }),
    cell(x.operation_id), cell(x.rule), cell(x.field), cell(x.detail)), 'no violations');
  setText($('coverage-summary'), `${num(v.data.count)} violations · coverage ${num(c.data.percent).toFixed(1)}%`
    + ` (${num(c.data.exercised)}/${num(c.data.operations)})`);
  const missing = list(c.data.not_exercised);
  setText($('not-exercised-count'), `(${missing.length})`);
  $('not-exercised').replaceChildren(...missing.map((op) => el('li', { text: op })));
}

let slowBusy = false;
async function refreshSlow() {
  if (slowBusy || document.hidden) return; // no overlap, and no work in a background tab
  slowBusy = true;
  await Promise.all([ // each one caught, so this never rejects and the flag always resets
    loadBuckets(), loadDeliveries(), loadStrict(),
    loadPre('/_mock/rate-limits/', 'rate-rules'),
    loadPre('/_mock/scenario/', 'scenario-json', (d) => (d && d.scenario) ?? 'no scenario loaded'),
    loadPre('/_mock/faults/', 'faults-json'),
    loadPre('/_mock/latency/', 'latency-json'),
  ].map((p) => p.catch(report)));
  slowBusy = false;
}

// ---------------------------------------------------------------- live stream
let everOpened = false;

function connectStream() {
  if (typeof EventSource === 'undefined') return setStreamStatus('polling', 'warn');
  // EventSource cannot send headers: the token travels in the query string instead.
  const es = new EventSource(`/_mock/dashboard/stream/${token ? `?token=${encodeURIComponent(token)}` : ''}`);
  es.addEventListener('open', guard(() => {
    setStreamStatus('live', 'ok');
    if (everOpened) { journal.lastSeq = 0; return loadJournal(); } // the server may have restarted
    everOpened = true;
  }));
  es.addEventListener('state', guard((ev) => {
    const data = JSON.parse(ev.data);
    applyState(data);
    addTail(data.journal_tail);
  }));
  // Nothing logged: the browser reconnects by itself, unless a non-200 answer closed the source.
  es.addEventListener('error', () => {
    setStreamStatus('reconnecting…', 'warn');
    if (es.readyState === EventSource.CLOSED) setTimeout(guard(connectStream), 3000);
  });
}

// ---------------------------------------------------------------- boot
function boot() {
  bindHeader();
  bindGallery();
  bindJournal();
  connectStream();
  refreshState().then(refreshSlow).catch(report); // the strict panel needs the state first
  loadJournal().catch(report);
  setInterval(guard(refreshSlow), 5000);
  document.addEventListener('visibilitychange', guard(() => !document.hidden && refreshSlow()));
}

guard(boot)();
