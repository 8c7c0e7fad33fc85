//! `type=registry`: the cache manifest pushed under a reference (`ref`), blobs beside
//! it in the same repository, through kiln-registry's client (auth, mirrors, plain
//! HTTP for `registry.insecure`). Blobs the repository has are not pushed again.

use std::io::{Read, Write};
use std::sync::Arc;

use kiln_oci::{Descriptor, Reference};
use kiln_registry::RegistryClient;

use crate::{CacheBackend, Error};

/// A cache in a registry repository.
#[derive(Clone)]
pub struct RegistryCache {
    client: Arc<RegistryClient>,
    reference: Reference,
}

impl RegistryCache {
    /// The cache at `reference`; `insecure` lets its registry be reached over plain HTTP.
    pub fn new(client: Arc<RegistryClient>, reference: Reference, insecure: bool) -> Self {
        if insecure {
            client.allow_plain_http(&reference.domain);
        }
        Self { client, reference }
    }

    fn tag_or_digest(&self) -> String {
        self.reference
            .digest
            .clone()
            .or_else(|| self.reference.tag.clone())
            .unwrap_or_else(|| "latest".to_owned())
    }
}

impl CacheBackend for RegistryCache {
    fn read_manifest(&self) -> Result<Vec<u8>, Error> {
        match self
            .client
            .fetch_manifest(&self.reference, &self.tag_or_digest())
        {
            Ok(fetched) => Ok(fetched.bytes),
            Err(kiln_registry::Error::Status { status: 404, .. }) => Err(Error::NotFound(format!(
                "no cache at {}: export one there with --cache-to type=registry,ref={}",
                self.reference, self.reference
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn read_blob(&self, blob: &Descriptor, mut out: &mut dyn Write) -> Result<(), Error> {
        self.client
            .fetch_blob(&self.reference, &blob.digest, &mut out)?;
        Ok(())
    }

    fn has_blob(&self, blob: &Descriptor) -> Result<bool, Error> {
        Ok(self.client.has_blob(&self.reference, &blob.digest)?)
    }

    fn write_blob(&self, blob: &Descriptor, content: &mut (dyn Read + Send)) -> Result<(), Error> {
        self.client
            .push_blob(&self.reference, &blob.digest, blob.size, content, None)?;
        Ok(())
    }

    fn write_manifest(&self, bytes: &[u8], media_type: &str) -> Result<(), Error> {
        self.client
            .push_manifest(&self.reference, &self.tag_or_digest(), media_type, bytes)?;
        Ok(())
    }
}
