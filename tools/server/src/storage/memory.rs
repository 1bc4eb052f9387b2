//! The in-memory storage: the cacher is the store. Writes are the cacher's conditional
//! writes, decided in order by its dispatcher; its data lives as long as the process.

use super::{Changed, Preconditions, Storage, StorageError, Stored, Target, UpdateFn};
use crate::object::Object;
use crate::resource::ResourceDef;
use std::sync::Arc;
use watchcache::{Cacher, ConditionalError, Producer, Written};

/// A resource kept in its cacher alone.
#[derive(Debug)]
pub(crate) struct MemoryStorage {
    cacher: Cacher<Object>,
    producer: Producer<Object>,
    def: ResourceDef,
}

impl MemoryStorage {
    /// Writes `def`'s objects to `cacher`.
    pub(crate) fn new(cacher: Cacher<Object>, def: ResourceDef) -> Self {
        Self { producer: cacher.producer(), cacher, def }
    }

    fn key(&self, target: &Target<'_>) -> String {
        self.def.key(target.namespace, target.name)
    }
}

fn stored(written: Written<Object>) -> Stored {
    let object = written.object.or(written.prev).expect("a write has an object or deletes one");
    Stored { object, revision: written.revision }
}

fn stopped() -> StorageError {
    StorageError::Unavailable("the server is shutting down".into())
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    async fn create(&self, target: Target<'_>, object: Object) -> Result<Stored, StorageError> {
        match self.producer.put_if(self.key(&target), object, |current| current.is_none()).await {
            Ok(written) => Ok(stored(written)),
            Err(ConditionalError::Rejected { .. }) => Err(StorageError::already_exists(&target)),
            Err(_) => Err(stopped()),
        }
    }

    async fn update(
        &self,
        target: Target<'_>,
        precondition: Option<u64>,
        next: &UpdateFn<'_>,
    ) -> Result<Stored, StorageError> {
        let key: Arc<str> = self.key(&target).into();
        // Retried while another write lands between the read and the write, as
        // Kubernetes' GuaranteedUpdate does; every retry means another write won.
        let mut current =
            self.cacher.get(&key).map_err(|error| StorageError::Unavailable(error.to_string()))?.0;
        loop {
            let Some(object) = current else { return Err(StorageError::not_found(&target)) };
            if precondition.is_some_and(|revision| object.revision() != revision) {
                return Err(StorageError::conflict(&target));
            }
            let replacement = next(&object).map_err(StorageError::Refused)?;
            let expected = object.revision();
            let check = move |now: Option<&Object>| now.is_some_and(|now| now.revision() == expected);
            match self.producer.put_if(key.clone(), replacement, check).await {
                Ok(written) => return Ok(stored(written)),
                Err(ConditionalError::Rejected { current: now }) => current = now,
                Err(_) => return Err(stopped()),
            }
        }
    }

    async fn delete(
        &self,
        target: Target<'_>,
        preconditions: &Preconditions,
    ) -> Result<Stored, StorageError> {
        let held = preconditions.clone();
        match self.producer.delete_if(self.key(&target), move |current| held.hold_for(current)).await {
            Ok(written) => Ok(stored(written)),
            Err(ConditionalError::Rejected { current: Some(_) }) if preconditions.any() => {
                Err(StorageError::conflict(&target))
            }
            Err(ConditionalError::Rejected { .. }) => Err(StorageError::not_found(&target)),
            Err(_) => Err(stopped()),
        }
    }

    /// Every acknowledged write is already applied: a conditional write answers once it
    /// is visible.
    async fn sync(&self) -> Result<u64, StorageError> {
        Ok(self.cacher.revision())
    }

    /// No history beyond the cacher's window.
    async fn state_at(&self, revision: u64) -> Result<Vec<Object>, StorageError> {
        Err(StorageError::Compacted { requested: revision, oldest: self.cacher.stats().window_oldest })
    }

    async fn changes(&self, after: u64, _: u64) -> Result<Vec<Changed>, StorageError> {
        // The cacher is the only history a store in memory has.
        Err(StorageError::Compacted { requested: after, oldest: self.cacher.stats().window_oldest })
    }

    fn shutdown(&self) {}
}
