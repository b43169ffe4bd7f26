//! What a trained model makes, and how it is drawn: [`infer`] (encode, decode and reconstruct
//! batches), [`apply`] (prior samples, the 2-D manifold, interpolation, PSNR, upscaling),
//! [`projection`] (the plane a code is drawn on) and [`viz`] (grids, scatter plots, line charts,
//! pictures written in the format their extension names).

pub mod apply;
pub mod infer;
pub mod projection;
pub mod viz;
