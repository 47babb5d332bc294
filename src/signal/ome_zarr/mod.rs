//! OME-Zarr multiscale images (OME-NGFF 0.4 on Zarr v2, 0.5 on Zarr v3): the format that
//! bio-imaging and microscopy viewers (napari, neuroglancer, Fiji/MoBIE) open.
//!
//! * [`ngff`]: the OME-NGFF metadata: axes mapped from a signal's axes
//!   ([`ome_axes`]), units ([`udunits_name`]), the `multiscales` documents.
//! * [`pyramid`]: the levels of a pyramid ([`PyramidGeometry`]), their reductions
//!   ([`PyramidMethod`]: mean, Gaussian, nearest) and the one-pass fold that builds them
//!   ([`PyramidFold`]).
//! * [`write`]: [`write_ome_zarr`], the streaming, atomic and resumable pyramid writer.

pub mod ngff;
pub mod pyramid;
pub mod write;

pub use ngff::{OmeAxis, OmeAxisType, OmeVersion, hyperspy_unit, ome_axes, udunits_name};
pub use pyramid::{GAUSSIAN_SIGMA, LevelGeometry, PyramidFold, PyramidGeometry, PyramidMethod};
pub use write::{PyramidLevel, PyramidOptions, PyramidReport, write_ome_zarr};
