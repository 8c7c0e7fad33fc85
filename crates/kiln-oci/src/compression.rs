//! Layer compression: the algorithms an image's layers may use, and their media types.

use std::fmt;

use crate::media_type;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// A plain tar.
    Uncompressed,
    /// gzip (the default everywhere).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// eStargz: gzip members per entry plus a table of contents, for lazy pulling.
    Estargz,
}

impl Compression {
    /// The name used in exporter options (`compression=zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Uncompressed => "uncompressed",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Estargz => "estargz",
        }
    }

    /// Parses an exporter option value.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Uncompressed, Self::Gzip, Self::Zstd, Self::Estargz]
            .into_iter()
            .find(|c| c.name() == name)
    }

    /// The compression a layer media type declares (eStargz is gzip to a reader).
    pub fn of_media_type(media: &str) -> Option<Self> {
        match media {
            media_type::OCI_LAYER_GZIP
            | media_type::DOCKER_LAYER_GZIP
            | media_type::OCI_LAYER_NONDIST_GZIP
            | media_type::DOCKER_FOREIGN_LAYER_GZIP => Some(Self::Gzip),
            media_type::OCI_LAYER | media_type::DOCKER_LAYER | media_type::OCI_LAYER_NONDIST => {
                Some(Self::Uncompressed)
            }
            media_type::OCI_LAYER_ZSTD | media_type::DOCKER_LAYER_ZSTD => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The layer media type for this compression, in OCI or Docker flavour.
    pub fn layer_media_type(self, oci: bool) -> &'static str {
        match (self, oci) {
            (Self::Uncompressed, true) => media_type::OCI_LAYER,
            (Self::Uncompressed, false) => media_type::DOCKER_LAYER,
            (Self::Gzip | Self::Estargz, true) => media_type::OCI_LAYER_GZIP,
            (Self::Gzip | Self::Estargz, false) => media_type::DOCKER_LAYER_GZIP,
            (Self::Zstd, true) => media_type::OCI_LAYER_ZSTD,
            (Self::Zstd, false) => media_type::DOCKER_LAYER_ZSTD,
        }
    }

    /// Whether only OCI media types can describe it (BuildKit turns `oci-mediatypes`
    /// on for these).
    pub fn needs_oci_media_types(self) -> bool {
        matches!(self, Self::Zstd | Self::Estargz)
    }

    /// The compression levels it accepts.
    pub fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Self::Uncompressed => 0..=0,
            Self::Gzip | Self::Estargz => 0..=9,
            Self::Zstd => 0..=22,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A layer media type in the other flavour (OCI ↔ Docker), same content.
pub fn convert_layer_media_type(media: &str, oci: bool) -> String {
    let nondistributable = matches!(
        media,
        media_type::OCI_LAYER_NONDIST_GZIP
            | media_type::OCI_LAYER_NONDIST
            | media_type::DOCKER_FOREIGN_LAYER_GZIP
    );
    match Compression::of_media_type(media) {
        // Foreign layers keep their type: a registry treats them differently.
        Some(_) if nondistributable => media.to_owned(),
        Some(compression) => compression.layer_media_type(oci).to_owned(),
        None => media.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_round_trip() {
        for c in [
            Compression::Uncompressed,
            Compression::Gzip,
            Compression::Zstd,
        ] {
            for oci in [true, false] {
                assert_eq!(Compression::of_media_type(c.layer_media_type(oci)), Some(c));
            }
            assert_eq!(Compression::parse(c.name()), Some(c));
        }
        assert_eq!(
            convert_layer_media_type(media_type::DOCKER_LAYER_GZIP, true),
            media_type::OCI_LAYER_GZIP
        );
        assert_eq!(
            convert_layer_media_type(media_type::OCI_LAYER, false),
            media_type::DOCKER_LAYER
        );
    }
}
