//! OME-Zarr (OME-NGFF) multiscale images.

pub mod read;
pub use read::{OmeAxis, OmeImage, OmeLevel, hyperspy_unit, is_ome_zarr, open_ome_zarr};
