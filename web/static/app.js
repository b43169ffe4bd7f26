// gpu-ae's web page: opens WebGPU, loads MNIST or a folder the person picks (or drops), and
// calls the WASM exports of web/src/lib.rs (the crate's own data rules, Trainer, Inference,
// Evaluator and checkpoints); draws the loss curve, prior samples, reconstructions, and for a
// 2-D latent the manifold and the test codes. `?selftest` runs the self-test instead and
// writes its JSON line into #selftest. window.gpuAeStatus() reports the training for tests.
import init, * as ae from './pkg/gpu_ae_web.js';

const $ = (id) => document.getElementById(id);
const selftestMode = new URLSearchParams(location.search).has('selftest');
const MNIST_FILES = [
  'train-images-idx3-ubyte.gz',
  'train-labels-idx1-ubyte.gz',
  't10k-images-idx3-ubyte.gz',
  't10k-labels-idx1-ubyte.gz',
];
// Ten colours for the ten digits (matplotlib's tab10).
const DIGIT_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const SCATTER_POINTS = 500;
// What the f16 figure says while f16 is not in use.
let f16Note = '';
// While training, the previews wait twice as long as they took: at most a third of the GPU.
const PREVIEW_PAUSE = 2;

function status(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

// One sentence when there is no WebGPU, and how to get it.
function noWebGpu(detail) {
  status('This page needs WebGPU, which this browser does not offer' + (detail ? ` (${detail})` : '') +
    ': use a current Chrome, Edge or Safari, or in Firefox and on Linux Chrome turn it on ' +
    '(about:config dom.webgpu.enabled, or chrome://flags/#enable-unsafe-webgpu).', true);
}

function selftestResult(result) {
  $('selftest').textContent = JSON.stringify(result);
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

// --- drawing -----------------------------------------------------------------------------

// Draws images [count, C, S, S] in [0, 1] as a grid of `cols` columns into a canvas.
function drawGrid(canvas, images, count, channels, size, cols) {
  const rows = Math.ceil(count / cols);
  canvas.width = cols * size;
  canvas.height = rows * size;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(canvas.width, canvas.height);
  const plane = size * size;
  for (let i = 0; i < count; i++) {
    const ox = (i % cols) * size, oy = Math.floor(i / cols) * size;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const at = ((oy + y) * canvas.width + ox + x) * 4;
        for (let c = 0; c < 3; c++) {
          const v = images[i * channels * plane + Math.min(c, channels - 1) * plane + y * size + x];
          img.data[at + c] = Math.round(255 * Math.min(1, Math.max(0, v)));
        }
        img.data[at + 3] = 255;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}

// The loss curves: training (one point per submission, the mean loss of its steps) and test
// (one point per epoch), both [step, loss].
function drawCurve(train, test = []) {
  const canvas = $('curve');
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 40;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = '#999';
  ctx.strokeRect(pad, 10, w - pad - 10, h - pad - 10);
  const all = train.concat(test);
  if (all.length < 2) return;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const y0 = Math.min(...ys), y1 = Math.max(...ys);
  const px = (x) => pad + (w - pad - 10) * (x - x0) / Math.max(1e-9, x1 - x0);
  const py = (y) => 10 + (h - pad - 10) * (1 - (y - y0) / Math.max(1e-9, y1 - y0));
  ctx.fillStyle = '#444';
  ctx.font = '11px sans-serif';
  ctx.fillText(y1.toFixed(0), 2, 18);
  ctx.fillText(y0.toFixed(0), 2, h - pad);
  ctx.fillText(`step ${x0}`, pad, h - pad + 16);
  ctx.fillText(`${x1}`, w - 40, h - pad + 16);
  for (const [points, colour] of [[train, '#1f77b4'], [test, '#ff7f0e']]) {
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
    ctx.stroke();
    if (points === test) points.forEach(([x, y]) => ctx.fillRect(px(x) - 2, py(y) - 2, 4, 4));
  }
}

// Points [x0, y0, x1, …] of test codes on a plane, coloured by class.
function drawScatter(points, labels) {
  const canvas = $('scatter');
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const n = labels.length;
  let lim = 1e-6;
  for (let i = 0; i < 2 * n; i++) if (Number.isFinite(points[i])) lim = Math.max(lim, Math.abs(points[i]));
  for (let i = 0; i < n; i++) {
    ctx.fillStyle = labels[i] >= 0xffffffff ? '#000' : DIGIT_COLOURS[labels[i] % 10];
    const x = w / 2 + (w / 2 - 14) * points[2 * i] / lim;
    const y = h / 2 - (h / 2 - 14) * points[2 * i + 1] / lim;
    ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
  }
  const names = state.classNames.length ? state.classNames : DIGIT_COLOURS.map((_, d) => String(d));
  // The legend, wrapped to the canvas (colours repeat after ten classes).
  ctx.font = 'bold 11px sans-serif';
  let x = 6, y = 14;
  names.slice(0, 20).forEach((name, d) => {
    const width = ctx.measureText(name).width;
    if (x > 6 && x + width > w - 6) { x = 6; y += 14; }
    ctx.fillStyle = DIGIT_COLOURS[d % 10];
    ctx.fillText(name, x, y);
    x += width + 8;
  });
}

// --- the page ----------------------------------------------------------------------------

const state = {
  adapter: '',
  training: false, // an epoch loop is running
  started: false, // a training exists (start_training was called)
  latent: 2,
  image: null, // the model's image shape, from start_training or open_checkpoint
  data: null, // the page's dataset, from load_mnist or decode_folder
  modelData: false, // whether the viewed model's test images are loaded
  curve: [],
  last: null, // the previous progress report of this epoch
  loop: null, // the running epoch loop's promise
  testCurve: [],
  previews: 0, // refreshes of the pictures drawn so far
  rows: ['test images', 'reconstructions'],
  classNames: [], // the dataset's classes (the scatter's colours)
  classes: [], // a conditional model's classes
  kept: null, // {model, optimizer, epoch}: the training after its last finished epoch
  stepsDone: 0,
  lossFirst: null,
  lossLast: null,
  epochs: 1,
  stepsPerEpoch: 0,
};

// The training as the headless test reads it.
window.gpuAeStatus = () => ({
  steps: state.stepsDone,
  epoch: state.last ? state.last.epoch : null, // the epoch under way, 0-based
  epoch_steps: state.last ? state.last.steps : null, // steps per epoch
  loss_first: state.lossFirst,
  loss_last: state.lossLast,
  channels: state.image ? state.image.channels : null,
  size: state.image ? state.image.size : null,
  adapter: state.adapter,
  training: state.training,
  previews: state.previews,
  decoder: state.decoder, // where the last picked folder was decoded
  data: state.data,
});

function onProgress(json) {
  const p = JSON.parse(json);
  // Each report holds the epoch's running sums: the difference to the last is this submission.
  const prev = state.last && state.last.epoch === p.epoch ? state.last : { images: 0, loss: 0 };
  const images = p.images - prev.images;
  if (images > 0) {
    const loss = (p.loss * p.images - prev.loss * prev.images) / images;
    state.curve.push([p.steps_done, loss]);
    if (state.lossFirst === null) state.lossFirst = loss;
    state.lossLast = loss;
    drawCurve(state.curve, state.testCurve);
  }
  state.last = p;
  state.stepsDone = p.steps_done;
  $('ips').textContent = p.images_per_s.toFixed(0);
  $('epoch').textContent = `${p.epoch + 1} / ${state.epochs}`;
  $('step').textContent = `${p.step} / ${p.steps}`;
  $('loss').textContent = p.loss.toFixed(2);
  const left = state.epochs * state.stepsPerEpoch - p.steps_done;
  const stepsPerS = p.images_per_s / Number($('batch').value);
  $('eta').textContent = left > 0 && stepsPerS > 0 ? `about ${formatSeconds(left / stepsPerS)} left` : '';
}

function formatSeconds(s) {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// Test images per row of the task picture, steps of the interpolation.
const TASK_COLUMNS = 10;
const INTERPOLATION_STEPS = 10;

async function refreshPreviews() {
  const t0 = performance.now();
  await drawPreviews();
  state.previews += 1;
  return performance.now() - t0;
}

async function drawPreviews() {
  const { channels, size } = state.image;
  // A conditional model: one column per class (at most 16), the same codes in every column.
  const k = state.classes.length;
  const cols = k > 0 ? Math.min(k, 16) : 8;
  const count = k > 0 ? cols * Math.max(1, Math.floor(64 / cols)) : 64;
  drawGrid($('samples'), await ae.samples(count, 1), count, channels, size, cols);
  $('samples-note').textContent = k > 0 ? ` (one class per column: ${state.classes.slice(0, cols).join(', ')})` : '';
  const two = state.latent === 2;
  document.querySelectorAll('.latent2').forEach((e) => e.classList.toggle('hidden', !two));
  if (two) drawGrid($('manifold'), await ae.manifold(15, 0), 225, channels, size, 15);
  $('manifold-note').textContent = k > 0 ? ` (class ${state.classes[0]})` : '';
  $('interp-note').textContent = k > 0 ? ' (all drawn as the first image\'s class)' : '';
  if (!state.modelData) return;
  const rows = state.rows.length;
  drawGrid($('recon'), await ae.task_picture(TASK_COLUMNS), rows * TASK_COLUMNS, channels, size, TASK_COLUMNS);
  $('recon').style.height = `${42 * rows}px`;
  $('task-rows').textContent = `rows: ${state.rows.join(', ')}`;
  if (state.data && state.data.test > 1) {
    drawGrid($('interp'), await ae.interpolation(0, 1, INTERPOLATION_STEPS), INTERPOLATION_STEPS, channels, size, INTERPOLATION_STEPS);
  }
  const plane = JSON.parse(await ae.code_plane(SCATTER_POINTS));
  drawScatter(plane.points, plane.labels);
  $('axes').textContent = `(${plane.axes[0]} across, ${plane.axes[1]} up)`;
}

async function previewLoop() {
  while (state.training) {
    let took = 1000;
    try {
      took = await refreshPreviews();
    } catch (e) {
      // A preview that fails (the device lost under it) leaves the training to say why.
      console.log(`preview failed: ${e}`);
    }
    await new Promise((r) => setTimeout(r, PREVIEW_PAUSE * took));
  }
}

function setBusy(training) {
  $('pause').disabled = !training;
  $('stop').disabled = !training && !state.started;
  $('start').disabled = training || !state.data;
  const saved = state.hasTraining || state.kept;
  for (const id of ['download', 'download-optimizer']) $(id).disabled = training || !saved;
  $('evaluate').disabled = training || !state.modelData;
}

// Test figures per epoch on a seeded random subset of at most this many test images.
const EPOCH_TEST_IMAGES = 500;

// After each finished epoch: its test loss (a point of the test curve), and the training's
// files kept in the page, so that a lost device loses nothing.
async function epochEnded(epoch) {
  const m = JSON.parse(await ae.evaluate(EPOCH_TEST_IMAGES));
  const loss = m.test_neg_elbo ?? m.test_bce ?? m.test_mse;
  state.testCurve.push([state.stepsDone, loss]);
  $('test-note').textContent = m.images < m.of
    ? `test: a seeded random ${m.images} of the ${m.of} test images (Evaluate gives all of them)`
    : `test: all ${m.of} test images`;
  drawCurve(state.curve, state.testCurve);
  state.kept = {
    model: await ae.checkpoint_bytes(),
    optimizer: await ae.optimizer_bytes(),
    epoch: epoch + 1,
  };
}

async function epochLoop() {
  state.training = true;
  setBusy(true);
  status('Training…');
  let previews = previewLoop();
  let done = false;
  state.pauseAsked = false;
  try {
    for (;;) {
      const r = JSON.parse(await ae.train_epoch(onProgress));
      if (!r.finished || state.stopAsked) break;
      state.training = false; // the epoch's end: evaluation and the kept files first
      await previews;
      await epochEnded(r.progress.epoch);
      if (r.progress.epoch + 1 >= state.epochs) { done = true; break; }
      // A pause asked for between two epochs (train_epoch only sees those asked during one).
      if (state.pauseAsked || state.stopAsked) break;
      state.training = true;
      previews = previewLoop();
    }
    status(done ? `Trained ${state.epochs} epochs.` : state.stopAsked ? 'Stopped.' : 'Paused.');
  } catch (e) {
    status(trainingError(e), true);
  }
  state.training = false;
  if (done || state.stopAsked) state.started = false;
  state.stopAsked = false;
  setBusy(false);
  $('start').textContent = state.started || state.lost ? 'Continue' : 'Start a new training';
  await previews;
  if (!state.lost) await refreshPreviews();
}

// A failure in words a person can act on.
function trainingError(e) {
  const text = String(e);
  const lost = ae.device_lost();
  if (lost) {
    state.lost = true;
    const kept = state.kept
      ? ` The model and optimizer state after epoch ${state.kept.epoch} are kept in the page: download them, or press Continue to reopen the GPU and go on from there.`
      : ' No epoch had finished, so nothing was kept: press Start to begin again.';
    return `The GPU device was lost (${lost}).${kept}`;
  }
  if (/out of memory|OutOfMemory|allocat|too large/i.test(text)) {
    return `Training stopped: the GPU ran out of memory (${text}). Try a smaller batch, a smaller size or smaller widths.`;
  }
  return `Training stopped: ${text}`;
}

async function pauseTraining() {
  if (!state.training) return;
  ae.pause();
  await state.loop;
}

// The settings as the TrainConfig record names them (the gpu-ae train flags).
function settings() {
  const kind = $('model').value;
  const s = {
    model: kind,
    latent: $('latent').value,
    task: $('task').value,
    loss: $('loss').value,
    widths: $('widths').value.replace(/\s+/g, ''),
    norm: $('norm').value,
    act: $('act').value,
    block: $('block').value,
    upsample: $('upsample').value,
    beta: $('beta').value,
    batch: $('batch').value,
    lr: $('lr').value,
    lr_schedule: $('lr_schedule').value,
    warmup_steps: $('warmup_steps').value,
    seed: '0',
    precision: $('f16box').checked ? 'f16' : 'f32',
    epochs: $('epochs').value,
    images: $('images').value,
    conditional: $('conditional').checked,
  };
  if (s.task === 'denoise') s.noise = $('noise').value;
  if (kind === 'dense-vae') {
    for (const k of ['widths', 'norm', 'act', 'block', 'upsample']) delete s[k];
  }
  return s;
}

// What every new or continued training sets in the page from start_training's answer.
function trainingStarted(info) {
  $('f16').textContent = info.f16 ? 'in use (activations stored as f16)' : f16Note;
  state.started = true;
  state.hasTraining = true;
  state.latent = Number(info.settings.latent);
  state.classes = info.classes;
  state.rows = info.rows;
  state.image = { channels: info.channels, size: info.size };
  state.modelData = true;
  state.curve = [];
  state.testCurve = [];
  state.last = null;
  state.lossFirst = null;
  state.lossLast = null;
  state.stepsPerEpoch = info.steps_per_epoch;
  const lr = info.settings.lr_schedule === 'cosine' ? `, cosine schedule over ${state.epochs} epochs` : '';
  return `${info.settings.model}, latent ${info.settings.latent}, ${info.task}: ${info.params} parameters, ` +
    `${info.steps_per_epoch} steps per epoch${lr}.`;
}

async function start() {
  if (state.lost && state.kept) {
    // After a lost device: a new device, and the training from its kept files.
    status(`Reopening the GPU to continue after epoch ${state.kept.epoch}…`);
    await ae.open_gpu(state.adapter);
    state.lost = false;
    const info = JSON.parse(ae.resume_training(state.kept.model, state.kept.optimizer,
      'model.safetensors', Number($('images').value)));
    const line = trainingStarted(info);
    state.stepsDone = info.steps_done;
    status(`Continuing after epoch ${state.kept.epoch}: ${line}`);
  } else if (!state.started) {
    if (state.lost) {
      await ae.open_gpu(state.adapter);
      state.lost = false;
    }
    const s = settings();
    state.epochs = Number(s.epochs);
    const line = trainingStarted(JSON.parse(ae.start_training(JSON.stringify(s))));
    state.stepsDone = 0;
    state.kept = null;
    $('figures').textContent = '';
    status(line);
  }
  state.loop = epochLoop();
}

// Continues a run from its model.safetensors and optimizer.safetensors on the page's images.
async function resumeFiles(files) {
  await pauseTraining();
  const byName = {};
  for (const f of files) byName[f.name.includes('optimizer') ? 'optimizer' : 'model'] = f;
  if (!byName.model || !byName.optimizer) {
    throw new Error('continue a run: pick both its model.safetensors and its optimizer.safetensors');
  }
  const bytes = async (f) => new Uint8Array(await f.arrayBuffer());
  const info = JSON.parse(ae.resume_training(await bytes(byName.model), await bytes(byName.optimizer),
    byName.model.name, Number($('images').value)));
  state.epochs = Math.max(Number($('epochs').value), info.epoch + 1);
  const line = trainingStarted(info);
  state.stepsDone = info.steps_done;
  state.kept = null;
  $('start').textContent = 'Continue';
  setBusy(false);
  status(`Continuing ${byName.model.name} at epoch ${info.epoch + 1} (${info.steps_done} steps done): ${line} Press Continue.`);
  await refreshPreviews();
}

// New settings start a new training at the next Start.
function settingsChanged() {
  if (state.training) return;
  state.started = false;
  $('start').textContent = 'Start';
  setBusy(false);
}

function save(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function evaluate() {
  status('Evaluating on the test images…');
  const m = JSON.parse(await ae.evaluate(0));
  const parts = Object.entries(m).filter(([k]) => k.startsWith('test_'))
    .map(([k, v]) => `${k} ${v.toFixed(k === 'test_psnr' ? 2 : 3)}`);
  $('figures').textContent = `On the ${m.images} test images: ${parts.join(', ')}`;
  window.gpuAeEval = m;
  status('Evaluated.');
}

async function openCheckpoint(bytes, name) {
  await pauseTraining();
  const info = JSON.parse(ae.open_checkpoint(bytes, name));
  state.started = false;
  state.hasTraining = false;
  state.kept = null;
  state.latent = info.latent;
  state.classes = info.classes;
  state.rows = info.rows;
  state.modelData = info.data;
  state.image = { channels: info.channels, size: info.size };
  $('start').textContent = 'Start';
  setBusy(false);
  status(`Opened ${name}: ${info.model}, latent ${info.latent}, ${info.channels === 3 ? 'colour' : 'grey'} ` +
    `${info.size}×${info.size}` + (info.conditional ? `, conditional on ${info.classes.length} classes` : '') +
    (info.epoch ? `, trained ${info.epoch} epochs` : '') +
    (info.data ? '.' : ': load its images (MNIST or its folder) to see reconstructions and codes.'));
  await refreshPreviews();
}

// Model settings that suit images of side `size` (the emoji model's at 32 and above).
function defaultsFor(size) {
  const big = size >= 32;
  $('widths').value = size >= 64 ? '32,64,128,256' : big ? '32,64,128' : '16,32';
  $('latent').value = big ? 128 : 16;
  $('norm').value = big ? 'batch' : 'none';
  $('act').value = big ? 'leaky-relu' : 'relu';
  $('beta').value = big ? 0.1 : 1;
  $('batch').value = big ? 64 : 128;
}

function dataLoaded(d) {
  state.data = d;
  state.classNames = d.classes;
  defaultsFor(d.size);
  settingsChanged();
  const classes = d.classes.length ? `, ${d.classes.length} classes` : '';
  const ignored = d.ignored === 1 ? '; 1 file that is not an image ignored'
    : d.ignored ? `; ${d.ignored} files that are not images ignored` : '';
  status(`${d.name}: ${d.train} training and ${d.test} test images, ` +
    `${d.channels === 3 ? 'colour' : 'grey'} ${d.size}×${d.size}${classes} (split: ${d.split})${ignored}. Press Start.`);
}

// Reads picked or dropped files ([{path, file}], paths relative to the folder `name`) by the
// rules of gpu-ae train --data: handed to the module a few at a time (it keeps the only copy of
// their bytes), listed and split by open_folder, decoded by DECODE_WORKERS workers
// (decode-worker.js, the same decoder), or in chunks on this thread without workers.
async function loadFolder(name, entries) {
  await pauseTraining();
  ae.begin_folder(name);
  for (let i = 0; i < entries.length; i += READ_AHEAD) {
    status(`Reading the files of ${name}: ${i} of ${entries.length}…`);
    const group = entries.slice(i, i + READ_AHEAD);
    const buffers = await Promise.all(group.map((e) => e.file.arrayBuffer()));
    buffers.forEach((b, j) => ae.folder_file(group[j].path, new Uint8Array(b)));
  }
  const opened = JSON.parse(ae.open_folder(Number($('channels').value), Number($('size').value),
    Number($('test-percent').value)));
  const progress = (r) => status(`Decoding the images of ${name}: ${r.done} of ${r.total}…`);
  let r = typeof Worker === 'undefined' ? null : await decodeOnWorkers(name, opened, progress);
  state.decoder = r ? `${DECODE_WORKERS} workers` : "the page's thread";
  if (!r) {
    r = opened;
    while (!r.dataset) {
      progress(r);
      await new Promise((ok) => setTimeout(ok, 0));
      r = JSON.parse(ae.decode_folder(64));
    }
  }
  dataLoaded(r.dataset);
}

const DECODE_WORKERS = Math.max(1, Math.min(navigator.hardwareConcurrency || 2, 4));
// Files read at once while a folder is handed to the module.
const READ_AHEAD = 32;

// Decodes open_folder's `to_decode` on workers and hands each image in, in order, as it comes;
// resolves to the last folder_add answer (null when workers cannot start: decode here then).
async function decodeOnWorkers(name, opened, progress) {
  const paths = opened.to_decode;
  let workers;
  try {
    workers = Array.from({ length: Math.min(DECODE_WORKERS, paths.length) },
      () => new Worker(new URL('decode-worker.js', import.meta.url), { type: 'module' }));
  } catch (e) {
    console.log(`no decoding workers (${e}): decoding on the page's thread`);
    return null;
  }
  try {
    return await new Promise((resolve, reject) => {
      const results = new Array(paths.length);
      let next = 0, sent = 0, last = opened;
      const send = (w) => {
        if (sent >= paths.length) return;
        const id = sent++;
        const bytes = ae.folder_image_bytes(id);
        w.postMessage({ id, name, path: paths[id], bytes, channels: opened.channels, size: opened.size },
          [bytes.buffer]);
      };
      for (const w of workers) {
        w.onerror = (e) => reject(new Error(`a decoding worker failed: ${e.message || e}`));
        w.onmessage = ({ data }) => {
          if (data.error) { reject(new Error(data.error)); return; }
          results[data.id] = data;
          try {
            while (next < paths.length && results[next]) {
              const d = results[next];
              results[next++] = true;
              last = JSON.parse(ae.folder_add(d.planes, d.grey, d.converted));
            }
            if (next % 64 === 0) progress(last);
            if (last.dataset) resolve(last);
            else send(w);
          } catch (e) { reject(e); }
        };
        // Two images in flight per worker, so none waits for the page.
        send(w);
        send(w);
      }
      if (paths.length === 0) resolve(last);
    });
  } finally {
    workers.forEach((w) => w.terminate());
  }
}

// The files of a folder input (webkitRelativePath starts with the folder's own name).
function pickedEntries(files) {
  const all = Array.from(files);
  const first = all.length ? (all[0].webkitRelativePath || all[0].name).split('/')[0] : 'picked';
  const nested = all.every((f) => (f.webkitRelativePath || '').startsWith(first + '/'));
  const entries = all.map((f) => ({
    path: nested ? f.webkitRelativePath.slice(first.length + 1) : (f.webkitRelativePath || f.name),
    file: f,
  }));
  return { name: nested ? first : 'picked images', entries };
}

async function dropped(items) {
  const roots = Array.from(items).map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  const out = [];
  let name = 'dropped images';
  if (roots.length === 1 && roots[0].isDirectory) {
    name = roots[0].name;
    await walkDir(roots[0], '', out);
  } else {
    for (const r of roots) {
      if (r.isDirectory) await walkDir(r, r.name + '/', out);
      else out.push({ path: r.name, file: await new Promise((ok, no) => r.file(ok, no)) });
    }
  }
  await loadFolder(name, out);
}

async function walkDir(dir, prefix, out) {
  const reader = dir.createReader();
  for (;;) {
    const batch = await new Promise((ok, no) => reader.readEntries(ok, no));
    if (!batch.length) return;
    for (const e of batch) {
      if (e.isDirectory) await walkDir(e, prefix + e.name + '/', out);
      else out.push({ path: prefix + e.name, file: await new Promise((ok, no) => e.file(ok, no)) });
    }
  }
}

async function loadMnist() {
  status('Loading MNIST…');
  const files = await Promise.all(MNIST_FILES.map((f) => fetchBytes(`mnist/${f}`)));
  dataLoaded(JSON.parse(ae.load_mnist(...files)));
}

function wire() {
  const fail = (e) => status(String(e), true);
  $('start').onclick = () => start().catch(fail);
  $('pause').onclick = () => {
    state.pauseAsked = true;
    ae.pause();
  };
  $('evaluate').onclick = () => evaluate().catch(fail);
  // The training's files; after a lost device, the ones kept at its last finished epoch.
  const file = (which) => (state.lost && state.kept ? Promise.resolve(state.kept[which])
    : which === 'model' ? ae.checkpoint_bytes() : ae.optimizer_bytes());
  $('download').onclick = () => file('model').then((b) => save(b, 'model.safetensors')).catch(fail);
  $('download-optimizer').onclick = () => file('optimizer').then((b) => save(b, 'optimizer.safetensors')).catch(fail);
  $('stop').onclick = () => {
    state.stopAsked = true;
    if (state.training) {
      ae.pause();
    } else {
      state.started = false;
      state.stopAsked = false;
      $('start').textContent = 'Start a new training';
      setBusy(false);
      status('Stopped.');
    }
  };
  $('resume').onchange = () => resumeFiles(Array.from($('resume').files)).catch(fail);
  document.querySelectorAll('.settings input, .settings select').forEach((e) => { e.onchange = settingsChanged; });
  $('use-mnist').onclick = () => loadMnist().catch(fail);
  $('folder').onchange = () => {
    const { name, entries } = pickedEntries($('folder').files);
    if (entries.length) loadFolder(name, entries).catch(fail);
  };
  const drop = $('drop');
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
  drop.ondragleave = () => drop.classList.remove('over');
  drop.ondrop = (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    dropped(e.dataTransfer.items).catch(fail);
  };
  document.querySelectorAll('.shipped').forEach((b) => {
    b.onclick = () => fetchBytes(`models/${b.dataset.file}`)
      .then((bytes) => openCheckpoint(bytes, b.dataset.file))
      .catch(fail);
  });
  $('file').onchange = async () => {
    const f = $('file').files[0];
    if (!f) return;
    try {
      await openCheckpoint(new Uint8Array(await f.arrayBuffer()), f.name);
    } catch (e) {
      fail(e);
    }
  };
  $('app').classList.remove('hidden');
}

async function main() {
  if (!navigator.gpu) {
    noWebGpu();
    if (selftestMode) selftestResult({ ok: false, error: 'no WebGPU (navigator.gpu is missing)' });
    return;
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) {
    noWebGpu('no adapter');
    if (selftestMode) selftestResult({ ok: false, error: 'no WebGPU adapter' });
    return;
  }
  const i = adapter.info || {};
  const adapterName = [i.vendor, i.architecture, i.device, i.description]
    .filter(Boolean).join(' ') || 'unnamed WebGPU adapter';
  state.adapter = adapterName;
  $('adapter').textContent = adapterName;
  status('Loading the WebAssembly…');
  await init();
  const gpu = JSON.parse(await ae.open_gpu(adapterName));
  f16Note = gpu.f16 ? 'available, not in use (f32 storage)' : 'not available (f32 storage)';
  $('f16').textContent = f16Note;
  $('f16box').disabled = !gpu.f16;
  if (selftestMode) {
    await loadMnist();
    status('Running the self-test…');
    const t0 = performance.now();
    const result = JSON.parse(await ae.selftest((line) => console.log(line)));
    result.adapter = adapterName;
    result.seconds = (performance.now() - t0) / 1000;
    selftestResult(result);
    status(result.ok ? 'Self-test passed.' : 'Self-test FAILED.', !result.ok);
    return;
  }
  wire();
  await loadMnist();
}

main().catch((e) => {
  status(`Error: ${e}`, true);
  console.error(e);
  if (selftestMode) selftestResult({ ok: false, error: String(e) });
});
