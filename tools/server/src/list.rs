//! Reads: a list of a collection (a page at a time) and a get of one object, answered
//! from the resource's cacher through its delegator, each object copied from the bytes
//! encoded when it was written.

use crate::negotiation::ReadAnswer;
use crate::query::{ListRequest, Query};
use crate::registry::Served;
use crate::status::ApiError;
use crate::storage::StorageError;
use crate::table::write_table;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};

/// A list's response: the objects, or a table of them.
pub(crate) async fn list(
    served: &Served,
    request: ListRequest,
    answer: ReadAnswer,
) -> Result<Response, ApiError> {
    let listed =
        served.delegator.list(&request.selection, request.at, &request.page).await.map_err(|error| {
            match error {
                StorageError::Compacted { requested, oldest } if request.continued => {
                    ApiError::continue_expired(requested, oldest)
                }
                other => ApiError::from(other),
            }
        })?;
    let mut items = listed.items;
    // The delegator was asked for one more than the client's limit: whether it exists says
    // whether to continue.
    let more = request.limit().is_some_and(|limit| items.len() > limit);
    if let Some(limit) = request.limit() {
        items.truncate(limit);
    }
    let next =
        items.last().filter(|_| more).map(|(key, _)| ListRequest::continue_token(key, listed.revision));
    let mut out = BytesMut::with_capacity(128 + items.len() * 256);
    if let ReadAnswer::Table(table) = answer {
        let rows = items.iter().map(|(_, object)| (&**object, object.revision()));
        write_table(&mut out, (served, table), rows, (listed.revision, next.as_deref()));
        return Ok(json_response(StatusCode::OK, out.freeze()));
    }
    #[cfg(feature = "protobuf")]
    if let Some(codec) = served.codec(answer.answer()) {
        let encoded = items
            .iter()
            .map(|(_, object)| Ok((served.encoded(codec, object)?, object.revision())))
            .collect::<Result<Vec<_>, ApiError>>()?;
        codec.list(&mut out, &encoded, listed.revision, next.as_deref());
        return Ok(protobuf_response(StatusCode::OK, out.freeze()));
    }
    out.put_slice(
        format!(
            r#"{{"kind":"{}List","apiVersion":"{}","metadata":{{"resourceVersion":"{}""#,
            served.def.kind, served.api_version, listed.revision
        )
        .as_bytes(),
    );
    if let Some(next) = next {
        out.put_slice(format!(r#","continue":"{next}""#).as_bytes());
    }
    out.put_slice(br#"},"items":["#);
    for (at, (_, object)) in items.iter().enumerate() {
        if at > 0 {
            out.put_u8(b',');
        }
        object.write_json(&mut out, &served.head, object.revision());
    }
    out.put_slice(b"]}");
    Ok(json_response(StatusCode::OK, out.freeze()))
}

/// A get's response: the object, or a table of its one row.
pub(crate) async fn get(
    served: &Served,
    (namespace, name): (&str, &str),
    query: &Query,
    answer: ReadAnswer,
) -> Result<Response, ApiError> {
    let (Some(object), _) = served.delegator.get(namespace, name, query.read_at()?).await? else {
        return Err(ApiError::not_found(&served.group_resource, name));
    };
    let ReadAnswer::Table(table) = answer else {
        return served.object_response(answer.answer(), StatusCode::OK, &object, object.revision());
    };
    let mut out = BytesMut::new();
    write_table(&mut out, (served, table), [(&*object, object.revision())], (object.revision(), None));
    Ok(json_response(StatusCode::OK, out.freeze()))
}

pub(crate) fn json_response(code: StatusCode, body: Bytes) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(feature = "protobuf")]
pub(crate) fn protobuf_response(code: StatusCode, body: Bytes) -> Response {
    (code, [(header::CONTENT_TYPE, crate::negotiation::PROTOBUF)], body).into_response()
}
