//! What the fuzz targets (`protocol/fuzz/`) drive: the decoder, and
//! permessage-deflate, fed arbitrary bytes. Not part of the API.

mod decoder;
mod deflate;

pub use decoder::decoder;
pub use deflate::deflate;
