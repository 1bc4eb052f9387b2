//! Namespaces as Kubernetes keeps them, when `namespaces` is served:
//!
//! - an object of a namespaced resource is created only in a namespace that exists,
//!   else 404 `NotFound` naming the namespace (the `NamespaceLifecycle` admission: the
//!   cache first, then a consistent read for one just created through another server);
//! - `default`, `kube-system`, `kube-public` and `kube-node-lease` exist from the start
//!   (kube-apiserver's bootstrap controller): created at start, an existing one kept, so
//!   any number of servers on one etcd agree; retried in the background while etcd does
//!   not answer;
//! - deleting a namespace deletes its objects of every served resource (the namespace
//!   controller's work, done here when the namespace is gone, before the answer); the
//!   first three may not be deleted (403 `Forbidden`). An object created while its
//!   namespace is being deleted can outlive it, as one can in Kubernetes until the
//!   controller's next pass; here it stays until it is deleted.

use crate::object::{Identity, Submitted};
use crate::registry::{Registry, Served};
use crate::selector::Selection;
use crate::status::ApiError;
use crate::storage::{Page, Preconditions, ReadAt, StorageError, Target};
use std::sync::Arc;
use std::time::Duration;

/// The namespaces that exist from the start.
const INITIAL: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
/// The namespaces that may not be deleted.
const PERMANENT: [&str; 3] = ["default", "kube-system", "kube-public"];
/// How often the initial namespaces are tried again while the storage does not answer.
const RETRY: Duration = Duration::from_secs(1);

/// Refuses a create into `namespace` unless it exists.
pub(crate) async fn ensure_exists(registry: &Registry, namespace: &str) -> Result<(), ApiError> {
    let Some(namespaces) = registry.namespaces() else { return Ok(()) };
    let key = namespaces.def.key("", namespace);
    if matches!(namespaces.delegator.cacher().get(&key), Ok((Some(_), _))) {
        return Ok(());
    }
    match namespaces.delegator.get("", namespace, ReadAt::Consistent).await? {
        (Some(_), _) => Ok(()),
        (None, _) => Err(ApiError::not_found(&namespaces.group_resource, namespace)),
    }
}

/// Creates the initial namespaces that do not exist; in the background, retried, if the
/// storage does not answer now.
pub(crate) async fn create_initial(registry: &Registry) {
    let Some(namespaces) = registry.namespaces().cloned() else { return };
    if create_missing(&namespaces).await.is_ok() {
        return;
    }
    tokio::spawn(async move {
        while let Err(error) = create_missing(&namespaces).await {
            tracing::warn!(%error, "the initial namespaces are not created yet; retrying");
            tokio::time::sleep(RETRY).await;
        }
    });
}

async fn create_missing(namespaces: &Served) -> Result<(), ApiError> {
    for name in INITIAL {
        let body = serde_json::json!({ "metadata": { "name": name } });
        let object = Submitted::from_value(body, &namespaces.def)?.into_object(
            &namespaces.def,
            "",
            name.to_owned(),
            Identity::new(),
        )?;
        let target = Target { resource: &namespaces.group_resource, namespace: "", name };
        match namespaces.delegator.create(target, object, false).await {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Refuses to delete a namespace Kubernetes keeps.
pub(crate) fn may_delete(namespaces: &Served, name: &str) -> Result<(), ApiError> {
    if PERMANENT.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "{} {name:?} is forbidden: this namespace may not be deleted",
            namespaces.group_resource
        )));
    }
    Ok(())
}

/// Deletes every object in `namespace` (just deleted) of every namespaced resource.
pub(crate) async fn delete_contents(registry: &Registry, namespace: &str) -> Result<(), ApiError> {
    for served in registry.all.iter().filter(|served| served.def.namespaced) {
        delete_all_in(served, namespace).await?;
    }
    Ok(())
}

async fn delete_all_in(served: &Arc<Served>, namespace: &str) -> Result<(), ApiError> {
    let selection = Selection::parse(&served.def, Some(namespace), (None, None))?;
    let listed = served.delegator.list(&selection, ReadAt::Consistent, &Page::default()).await?;
    for (_, object) in listed.items {
        let target = Target { resource: &served.group_resource, namespace, name: object.name() };
        match served.delegator.delete(target, &Preconditions::default(), false).await {
            Ok(_) | Err(StorageError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
