//! A split of a dataset on the GPU. When its images fit one storage binding they are uploaded
//! once and stay resident; otherwise (many adapters and every browser allow 128 MiB per binding,
//! and 200 000 colour images of 64×64 are 2.4 GB) the GPU holds one chunk at a time: the host
//! packs the next chunk's images in the epoch's visiting order and queues the upload while the
//! GPU still trains on the previous one, so the shuffle stays global. Either way the batch
//! gather reads `images[perm[i]]`; a streamed split's `perm` is the fixed `i mod chunk`.

use crate::bail;
use crate::data::Split;
use crate::error::Result;
use crate::gpu::{Gpu, Tensor, human_bytes};
use crate::model::ImageShape;
use crate::model::graph::ImageSource;
use std::path::{Path, PathBuf};

/// The most bytes a split may keep resident: [`Gpu::max_binding`], or `GPU_AE_STREAM_BYTES`
/// when smaller (to stream a small dataset, as the tests do).
pub fn resident_limit(gpu: &Gpu) -> u64 {
    let device = gpu.max_binding();
    match std::env::var("GPU_AE_STREAM_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(forced) => forced.min(device),
        None => device,
    }
}

/// A split of the dataset on the GPU: packed u8 pixels, the visiting order, the labels.
pub struct GpuSplit {
    /// Packed pixels `[⌈count · C·S·S / 4⌉]` words, or one chunk of them when streamed.
    pub images: Tensor,
    /// The shape of every image.
    pub shape: ImageShape,
    /// Where the images came from, for errors.
    pub source: PathBuf,
    /// `[count]` order in which batches visit the GPU's images (identity until shuffled).
    pub perm: Tensor,
    pub count: usize,
    pub labels: Vec<u32>,
    /// u32 `[count]` the labels on the GPU in the layout of `images` (one chunk's when
    /// streamed), for conditional models.
    pub gpu_labels: Tensor,
    /// Set when the images do not fit one binding.
    stream: Option<Stream>,
}

/// The host side of a streamed split.
struct Stream {
    /// `[count, C, S, S]` every image.
    pixels: Vec<u8>,
    /// How many images the GPU buffer holds.
    capacity: usize,
}

/// Packs `bytes` into whole little-endian u32 words (zero-padded): the layout the gather
/// kernel reads (`kernels::data::pack_bytes`).
fn padded(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

impl GpuSplit {
    /// Uploads a split, or prepares to stream it when it does not fit ([`resident_limit`]);
    /// `source` names the files in errors.
    pub fn upload(gpu: &Gpu, split: &Split, source: &Path) -> Result<GpuSplit> {
        Self::upload_within(gpu, split, source, resident_limit(gpu))
    }

    /// [`GpuSplit::upload`] keeping at most `limit` bytes of images resident (streamed in
    /// chunks of that size when the split is larger).
    pub fn upload_within(gpu: &Gpu, split: &Split, source: &Path, limit: u64) -> Result<GpuSplit> {
        let limit = limit.min(resident_limit(gpu));
        let im = &split.images;
        if im.rows != im.cols {
            bail!(
                "{}: images are {}×{} with {} channel(s); gpu-ae models take square images",
                source.display(),
                im.rows,
                im.cols,
                im.channels
            );
        }
        if im.count == 0 {
            bail!("{}: the split holds no images", source.display());
        }
        let shape = ImageShape {
            channels: im.channels,
            size: im.rows,
        };
        let per_image = shape.pixels();
        let (images, stream, gpu_labels) = if (im.pixels.len().next_multiple_of(4) as u64) <= limit
        {
            let bytes = padded(im.pixels.clone());
            let t = Tensor::from_bytes(gpu, &[bytes.len() / 4], &bytes, "dataset images")?;
            let labels = Tensor::from_u32(gpu, &[im.count], &split.labels, "dataset labels")?;
            (t, None, labels)
        } else {
            let capacity = (limit / per_image as u64) as usize;
            if capacity == 0 {
                bail!(
                    "{}: one {shape} image does not fit the {} {} allows per storage binding",
                    source.display(),
                    human_bytes(limit),
                    gpu.info.name
                );
            }
            let words = (capacity * per_image).div_ceil(4);
            let t = Tensor::zeros(gpu, &[words], "dataset images (a chunk)")?;
            let stream = Stream {
                pixels: im.pixels.clone(),
                capacity,
            };
            let labels = Tensor::zeros(gpu, &[capacity.min(im.count)], "dataset labels (a chunk)")?;
            (t, Some(stream), labels)
        };
        let order: Vec<u32> = (0..im.count as u32).collect();
        let perm = Tensor::from_u32(gpu, &[im.count], &order, "dataset order")?;
        Ok(GpuSplit {
            images,
            shape,
            source: source.to_path_buf(),
            perm,
            count: im.count,
            labels: split.labels.clone(),
            gpu_labels,
            stream,
        })
    }

    /// Refuses a model made for images of another shape.
    pub fn check_model(&self, model: &ImageShape) -> Result<()> {
        if self.shape != *model {
            bail!(
                "{}: images are {}, the model takes {model} images",
                self.source.display(),
                self.shape
            );
        }
        Ok(())
    }

    pub fn source(&self, batch_size: usize) -> ImageSource<'_> {
        ImageSource {
            images: &self.images,
            perm: &self.perm,
            batch_size,
            labels: &self.gpu_labels,
        }
    }

    /// Whether the images are streamed chunk by chunk rather than resident.
    pub fn is_streamed(&self) -> bool {
        self.stream.is_some()
    }

    /// Prepares the split for batches of `batch` and returns how many images one chunk holds (a
    /// whole number of batches), or every image when the split is resident. A streamed split's
    /// `perm` becomes `i mod chunk`, the position of visit i in its chunk.
    pub fn plan_chunks(&self, gpu: &Gpu, batch: usize) -> Result<usize> {
        let Some(stream) = &self.stream else {
            return Ok(self.count);
        };
        let chunk = stream.capacity / batch * batch;
        if chunk == 0 {
            bail!(
                "--batch {batch}: a batch of {} images does not fit the {} one storage binding of {} holds; use a smaller --batch",
                self.shape,
                human_bytes(resident_limit(gpu)),
                gpu.info.name
            );
        }
        let within: Vec<u32> = (0..self.count).map(|i| (i % chunk) as u32).collect();
        gpu.queue
            .write_buffer(&self.perm.buffer, 0, bytemuck::cast_slice(&within));
        Ok(chunk)
    }

    /// Sets the order in which the batches visit the images (`[count]`, a permutation): a
    /// resident split uploads it; a streamed one packs its chunks in this order instead
    /// ([`GpuSplit::load_chunk`]).
    pub fn set_order(&self, gpu: &Gpu, order: &[u32]) {
        if self.stream.is_none() {
            gpu.queue
                .write_buffer(&self.perm.buffer, 0, bytemuck::cast_slice(order));
        }
    }

    /// Streamed splits: packs the images (and labels) of visits `start..start + chunk` (by
    /// `order`, or in file order when None) and queues their upload, which lands before the
    /// next submission and after the previous ones. Nothing for a resident split.
    pub fn load_chunk(&self, gpu: &Gpu, order: Option<&[u32]>, start: usize, chunk: usize) {
        let Some(stream) = &self.stream else { return };
        let per_image = self.shape.pixels();
        let end = (start + chunk).min(self.count);
        let (bytes, labels): (Vec<u8>, Vec<u32>) = match order {
            None => (
                stream.pixels[start * per_image..end * per_image].to_vec(),
                self.labels[start..end].to_vec(),
            ),
            Some(order) => (
                order[start..end]
                    .iter()
                    .flat_map(|&i| {
                        let i = i as usize;
                        &stream.pixels[i * per_image..(i + 1) * per_image]
                    })
                    .copied()
                    .collect(),
                order[start..end]
                    .iter()
                    .map(|&i| self.labels[i as usize])
                    .collect(),
            ),
        };
        gpu.queue
            .write_buffer(&self.images.buffer, 0, &padded(bytes));
        gpu.queue
            .write_buffer(&self.gpu_labels.buffer, 0, bytemuck::cast_slice(&labels));
    }
}
