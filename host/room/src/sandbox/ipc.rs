//! Arrow IPC stream encoding for inputs and defensive decoding of module output: the
//! functions live in `cleanroom_formats::ipc`, where the fuzz targets reach them.

pub(crate) use cleanroom_formats::ipc::{decode, encode};
