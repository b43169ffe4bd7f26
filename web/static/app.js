// gpu-ae's web page: opens WebGPU, loads MNIST and calls the WASM exports of web/src/lib.rs
// (the crate's own Trainer, Inference and checkpoints); draws the loss curve, prior samples,
// reconstructions, and for a 2-D latent the manifold and the test codes. `?selftest` runs the
// self-test instead and writes its JSON line into #selftest.
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
const SCATTER_POINTS = 1000;
// What the f16 figure says while f16 is not in use.
let f16Note = '';
const PREVIEW_EVERY_MS = 1500;

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

// The loss curve: one point per submission (the mean loss of its steps).
function drawCurve(points) {
  const canvas = $('curve');
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 40;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = '#999';
  ctx.strokeRect(pad, 10, w - pad - 10, h - pad - 10);
  if (points.length < 2) return;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
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
  ctx.strokeStyle = '#1f77b4';
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
  ctx.stroke();
}

// The codes [n, 2] of test images, coloured by digit.
function drawScatter(codes, labels) {
  const canvas = $('scatter');
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const n = labels.length;
  let lim = 1e-6;
  for (let i = 0; i < 2 * n; i++) lim = Math.max(lim, Math.abs(codes[i]));
  for (let i = 0; i < n; i++) {
    ctx.fillStyle = DIGIT_COLOURS[labels[i] % 10];
    const x = w / 2 + (w / 2 - 14) * codes[2 * i] / lim;
    const y = h / 2 - (h / 2 - 14) * codes[2 * i + 1] / lim;
    ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
  }
  ctx.font = 'bold 12px sans-serif';
  DIGIT_COLOURS.forEach((c, d) => { ctx.fillStyle = c; ctx.fillText(String(d), 6 + 14 * d, 14); });
}

// --- the page ----------------------------------------------------------------------------

const state = {
  training: false, // an epoch loop is running
  started: false, // a training exists (start_training was called)
  latent: 2,
  image: null, // the model's image shape, from start_training or open_checkpoint
  data: null, // the loaded dataset's image shape, from load_mnist
  curve: [],
  last: null, // the previous progress report of this epoch
  loop: null, // the running epoch loop's promise
};

function onProgress(json) {
  const p = JSON.parse(json);
  // Each report holds the epoch's running sums: the difference to the last is this submission.
  const prev = state.last && state.last.epoch === p.epoch ? state.last : { images: 0, loss: 0 };
  const images = p.images - prev.images;
  if (images > 0) {
    const loss = (p.loss * p.images - prev.loss * prev.images) / images;
    state.curve.push([p.steps_done, loss]);
    drawCurve(state.curve);
  }
  state.last = p;
  $('ips').textContent = p.images_per_s.toFixed(0);
  $('epoch').textContent = `${p.epoch + 1}`;
  $('step').textContent = `${p.step} / ${p.steps}`;
  $('loss').textContent = p.loss.toFixed(2);
}

async function refreshPreviews() {
  const { channels, size } = state.image;
  drawGrid($('samples'), await ae.samples(64, 1), 64, channels, size, 8);
  const both = await ae.reconstructions(10);
  drawGrid($('recon'), both, 20, channels, size, 10);
  const two = state.latent === 2;
  document.querySelectorAll('.latent2').forEach((e) => e.classList.toggle('hidden', !two));
  if (two) {
    drawGrid($('manifold'), await ae.manifold(15), 225, channels, size, 15);
    // The scatter plot encodes the dataset's test images: only a model of their shape can.
    if (state.data && channels === state.data.channels && size === state.data.size) {
      drawScatter(await ae.latents(SCATTER_POINTS), ae.test_labels(SCATTER_POINTS));
    }
  }
}

async function previewLoop() {
  while (state.training) {
    await refreshPreviews();
    await new Promise((r) => setTimeout(r, PREVIEW_EVERY_MS));
  }
}

async function epochLoop() {
  state.training = true;
  $('pause').disabled = false;
  $('start').disabled = true;
  $('download').disabled = true;
  status('Training…');
  const previews = previewLoop();
  try {
    for (;;) {
      state.last = null;
      const r = JSON.parse(await ae.train_epoch(onProgress));
      if (!r.finished) break;
    }
    status('Paused.');
  } catch (e) {
    status(`Training stopped: ${e}`, true);
  }
  state.training = false;
  $('pause').disabled = true;
  $('start').disabled = false;
  $('start').textContent = 'Resume';
  $('download').disabled = false;
  await previews;
  await refreshPreviews();
}

async function pauseTraining() {
  if (!state.training) return;
  ae.pause();
  await state.loop;
}

async function start() {
  if (!state.started) {
    const latent = Number($('model').value);
    const info = JSON.parse(ae.start_training(latent, Number($('batch').value),
      Number($('lr').value), Number($('images').value), 0, $('f16box').checked));
    $('f16').textContent = info.f16 ? 'in use (activations stored as f16)' : f16Note;
    state.started = true;
    state.latent = latent;
    state.image = { channels: info.channels, size: info.size };
    state.curve = [];
    status(`conv-vae, latent ${latent}: ${info.params} parameters, ${info.steps_per_epoch} steps per epoch.`);
  }
  state.loop = epochLoop();
}

// New settings start a new training at the next Start.
function settingsChanged() {
  if (state.training) return;
  state.started = false;
  $('start').textContent = 'Start';
}

async function download() {
  const bytes = await ae.checkpoint_bytes();
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'model.safetensors';
  a.click();
  URL.revokeObjectURL(url);
}

async function openCheckpoint(bytes, name) {
  await pauseTraining();
  const info = JSON.parse(ae.open_checkpoint(bytes, name));
  state.started = false;
  $('start').textContent = 'Start';
  $('download').disabled = true;
  state.latent = info.latent;
  state.image = { channels: info.channels, size: info.size };
  status(`Opened ${name}: ${info.model}, latent ${info.latent}` +
    (info.epoch ? `, trained ${info.epoch} epochs` : '') + '.');
  await refreshPreviews();
}

function wire() {
  $('start').onclick = () => start().catch((e) => status(String(e), true));
  $('pause').onclick = () => ae.pause();
  $('download').onclick = () => download().catch((e) => status(String(e), true));
  for (const id of ['model', 'batch', 'lr', 'images', 'f16box']) $(id).onchange = settingsChanged;
  document.querySelectorAll('.shipped').forEach((b) => {
    b.onclick = () => fetchBytes(`models/${b.dataset.file}`)
      .then((bytes) => openCheckpoint(bytes, b.dataset.file))
      .catch((e) => status(String(e), true));
  });
  $('file').onchange = async () => {
    const f = $('file').files[0];
    if (!f) return;
    try {
      await openCheckpoint(new Uint8Array(await f.arrayBuffer()), f.name);
    } catch (e) {
      status(String(e), true);
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
  $('adapter').textContent = adapterName;
  status('Loading the WebAssembly…');
  await init();
  const gpu = JSON.parse(await ae.open_gpu(adapterName));
  f16Note = gpu.f16 ? 'available, not in use (f32 storage)' : 'not available (f32 storage)';
  $('f16').textContent = f16Note;
  $('f16box').disabled = !gpu.f16;
  status('Loading MNIST…');
  const files = await Promise.all(MNIST_FILES.map((f) => fetchBytes(`mnist/${f}`)));
  const counts = JSON.parse(ae.load_mnist(...files));
  state.data = { channels: counts.channels, size: counts.size };
  if (selftestMode) {
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
  status(`MNIST loaded: ${counts.train} training and ${counts.test} test images. Press Start, ` +
    'or open a trained model.');
}

main().catch((e) => {
  status(`Error: ${e}`, true);
  console.error(e);
  if (selftestMode) selftestResult({ ok: false, error: String(e) });
});
