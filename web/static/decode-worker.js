// A web worker that decodes the images of a picked folder with gpu-ae's own decoder (the Rust
// of data::memory, compiled to WASM: the same pixels as `gpu-ae train --data DIR`), so that the
// page stays responsive and decoding uses every core. In: {id, name, path, bytes, channels,
// size}; out: {id, planes, grey, converted}, or {id, error} naming the file.
import init, { prepare_image } from './pkg/gpu_ae_web.js';

const ready = init();

onmessage = async ({ data }) => {
  await ready;
  try {
    const p = prepare_image(data.name, data.path, data.bytes, data.channels, data.size);
    const planes = p.take_planes();
    const answer = { id: data.id, planes, grey: p.grey, converted: p.converted };
    p.free();
    postMessage(answer, [planes.buffer]);
  } catch (e) {
    postMessage({ id: data.id, error: String(e) });
  }
};
