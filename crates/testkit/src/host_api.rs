//! The host side of `componentize:lua-tests/host-api`, the interface the
//! interpreter suites' test worlds import (`interpreters/lua/tests/wit/worlds.wit`):
//! the resource `blob` (bytes the host keeps in its resource table) and the
//! functions `log`, `add`, `swap`, `classify` and `maybe-double`.
//!
//! The host counts the blobs alive ([`HostApi::live_blobs`]), so a test can
//! check that the script dropped (or its collector released) every handle
//! it had.

use crate::Host;
use wasmtime::component::{Linker, Resource, ResourceType, Val};
use wasmtime::{Error, StoreContextMut};

/// The name of the interface.
pub const HOST_API: &str = "componentize:lua-tests/host-api";

/// A `blob`: its bytes.
pub struct Blob(pub Vec<u8>);

/// The host's state for the interface, next to WASI.
#[derive(Debug, Default)]
pub struct HostApi {
    /// The messages of `log`, in order.
    pub log: Vec<String>,
    /// Blobs made (by the guest's constructor, `concat` or [`new_blob`])
    /// and not dropped yet.
    pub live_blobs: i64,
}

/// A host whose own state is [`HostApi`].
pub type ApiHost = Host<HostApi>;

/// A new blob of `bytes` in the host's table (counted as alive).
pub fn new_blob(host: &mut ApiHost, bytes: Vec<u8>) -> wasmtime::Result<Resource<Blob>> {
    host.data.live_blobs += 1;
    Ok(host.table.push(Blob(bytes))?)
}

/// The bytes of blob `b`.
pub fn blob_bytes(host: &ApiHost, b: &Resource<Blob>) -> wasmtime::Result<Vec<u8>> {
    Ok(host.table.get(b)?.0.clone())
}

/// Removes blob `b` (which the host owns again) from the table; its bytes.
pub fn delete_blob(host: &mut ApiHost, b: Resource<Blob>) -> wasmtime::Result<Vec<u8>> {
    let blob = host.table.delete(b)?;
    host.data.live_blobs -= 1;
    Ok(blob.0)
}

/// Adds the interface to `linker`.
pub fn add_to_linker(linker: &mut Linker<ApiHost>) -> wasmtime::Result<()> {
    type Cx<'a> = StoreContextMut<'a, ApiHost>;
    let mut inst = linker.instance(HOST_API)?;
    inst.resource("blob", ResourceType::host::<Blob>(), |mut store, rep| {
        delete_blob(store.data_mut(), Resource::new_own(rep)).map(drop)
    })?;
    inst.func_wrap("[constructor]blob", |mut store: Cx, (init,): (Vec<u8>,)| {
        Ok((new_blob(store.data_mut(), init)?,))
    })?;
    inst.func_wrap("[method]blob.size", |store: Cx, (b,): (Resource<Blob>,)| {
        Ok((blob_bytes(store.data(), &b)?.len() as u32,))
    })?;
    inst.func_wrap(
        "[method]blob.append",
        |mut store: Cx, (b, data): (Resource<Blob>, Vec<u8>)| {
            store.data_mut().table.get_mut(&b)?.0.extend(data);
            Ok(())
        },
    )?;
    inst.func_wrap("[method]blob.read", |store: Cx, (b,): (Resource<Blob>,)| {
        Ok((blob_bytes(store.data(), &b)?,))
    })?;
    inst.func_wrap(
        "[static]blob.concat",
        |mut store: Cx, (a, b): (Resource<Blob>, Resource<Blob>)| {
            let host = store.data_mut();
            let mut bytes = blob_bytes(host, &a)?;
            bytes.extend(blob_bytes(host, &b)?);
            Ok((new_blob(host, bytes)?,))
        },
    )?;
    inst.func_wrap("log", |mut store: Cx, (msg,): (String,)| {
        store.data_mut().data.log.push(msg);
        Ok(())
    })?;
    inst.func_wrap("add", |_: Cx, (a, b): (i32, i32)| Ok((a.wrapping_add(b),)))?;
    inst.func_new("swap", |_store, _ty, params, results| {
        let Some(Val::Record(fields)) = params.first() else {
            return Err(Error::msg(format!(
                "swap: expected a record, got {params:?}"
            )));
        };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let (Some(x), Some(y)) = (get("x"), get("y")) else {
            return Err(Error::msg(format!("swap: bad record {fields:?}")));
        };
        results[0] = Val::Record(vec![("x".into(), y), ("y".into(), x)]);
        Ok(())
    })?;
    inst.func_wrap("classify", |_: Cx, (n,): (i32,)| {
        let r: Result<String, String> = if n < 0 {
            Err("negative".into())
        } else if n % 2 == 0 {
            Ok("even".into())
        } else {
            Ok("odd".into())
        };
        Ok((r,))
    })?;
    inst.func_wrap("maybe-double", |_: Cx, (n,): (Option<u32>,)| {
        Ok((n.map(|x| x.wrapping_mul(2)),))
    })?;
    Ok(())
}
