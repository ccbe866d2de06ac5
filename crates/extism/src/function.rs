//! Host functions: [`Function`], [`UserData`], [`ValType`] and the [`host_fn!`](crate::host_fn)
//! macro, as Extism has them, carried over to `plinth::Function`.

use std::sync::{Arc, Mutex};

use crate::{CurrentPlugin, Error, Manifest};

/// A WebAssembly value type, for the parameters and results of host functions.
#[derive(Debug, Clone, Hash, Eq, PartialEq)]
pub enum ValType {
    I32,
    I64,
    F32,
    F64,
    V128,
    FuncRef,
    ExternRef,
}

/// The type of Extism memory handles in host function signatures.
pub const PTR: ValType = ValType::I64;

/// A WebAssembly value: a host function's arguments and results.
pub type Val = plinth::Val;

impl From<plinth::ValType> for ValType {
    fn from(ty: plinth::ValType) -> Self {
        use plinth::ValType as W;
        match ty {
            W::I32 => ValType::I32,
            W::I64 => ValType::I64,
            W::F32 => ValType::F32,
            W::F64 => ValType::F64,
            W::V128 => ValType::V128,
            W::Ref(r) if r.heap_type().is_func() => ValType::FuncRef,
            W::Ref(_) => ValType::ExternRef,
        }
    }
}

impl From<ValType> for plinth::ValType {
    fn from(ty: ValType) -> Self {
        match ty {
            ValType::I32 => plinth::ValType::I32,
            ValType::I64 => plinth::ValType::I64,
            ValType::F32 => plinth::ValType::F32,
            ValType::F64 => plinth::ValType::F64,
            ValType::V128 => plinth::ValType::V128,
            ValType::FuncRef => plinth::ValType::FUNCREF,
            ValType::ExternRef => plinth::ValType::EXTERNREF,
        }
    }
}

/// Stands in for Extism's C user data, which only its C API makes; Rust code never sees one
/// here (libplinth, Plinth's C API, has its own).
#[derive(Debug)]
pub struct CPtr {
    _private: (),
}

/// Data a host function shares with the program that made it. `UserData::new(v)` wraps `v`
/// in an `Arc<Mutex<_>>`; [`UserData::get`] hands out that `Arc`.
#[derive(Debug)]
pub enum UserData<T: Sized> {
    /// C data; never made by this crate.
    C(Arc<CPtr>),
    Rust(Arc<Mutex<T>>),
}

impl<T> UserData<T> {
    pub fn new(value: T) -> Self {
        UserData::Rust(Arc::new(Mutex::new(value)))
    }

    /// The shared value.
    pub fn get(&self) -> Result<Arc<Mutex<T>>, Error> {
        match self {
            UserData::Rust(data) => Ok(data.clone()),
            UserData::C(_) => anyhow::bail!("C user data cannot be used from Rust"),
        }
    }
}

impl<T> Clone for UserData<T> {
    fn clone(&self) -> Self {
        match self {
            UserData::C(p) => UserData::C(p.clone()),
            UserData::Rust(d) => UserData::Rust(d.clone()),
        }
    }
}

impl<T: Default> Default for UserData<T> {
    fn default() -> Self {
        UserData::new(T::default())
    }
}

type Callback =
    dyn Fn(&mut CurrentPlugin<'_, '_>, &[Val], &mut [Val]) -> Result<(), Error> + Send + Sync;

/// A function the host offers to plug-ins, imported from `extism:host/user` unless given
/// another namespace.
#[derive(Clone)]
pub struct Function {
    name: String,
    namespace: Option<String>,
    params: Vec<ValType>,
    results: Vec<ValType>,
    callback: Arc<Callback>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("params", &self.params)
            .field("results", &self.results)
            .finish()
    }
}

impl Function {
    /// A host function named `name` with these wasm parameter and result types ([`PTR`] for
    /// Extism handles). `f` gets the calling plug-in, the arguments, the result slots and a
    /// clone of `user_data`; an `Err` fails the plug-in's call.
    pub fn new<T, F>(
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Function
    where
        T: Send + 'static,
        F: Fn(&mut CurrentPlugin<'_, '_>, &[Val], &mut [Val], UserData<T>) -> Result<(), Error>
            + Send
            + Sync
            + 'static,
    {
        Function {
            name: name.into(),
            namespace: None,
            params: params.into_iter().collect(),
            results: results.into_iter().collect(),
            callback: Arc::new(move |plugin, inputs, outputs| {
                f(plugin, inputs, outputs, user_data.clone())
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace set with [`Function::with_namespace`]; `None` means `extism:host/user`.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn set_namespace(&mut self, namespace: impl Into<String>) {
        self.namespace = Some(namespace.into());
    }

    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.set_namespace(namespace);
        self
    }

    pub fn params(&self) -> &[ValType] {
        &self.params
    }

    pub fn results(&self) -> &[ValType] {
        &self.results
    }

    /// The Plinth host function that runs this one. The manifest is the plug-in's, for
    /// [`CurrentPlugin::manifest`].
    pub(crate) fn to_plinth(&self, manifest: &Arc<Manifest>) -> plinth::Function {
        let callback = self.callback.clone();
        let manifest = manifest.clone();
        let f = plinth::Function::new(
            self.name.clone(),
            self.params.iter().cloned().map(plinth::ValType::from),
            self.results.iter().cloned().map(plinth::ValType::from),
            plinth::UserData::new(()),
            move |inner, inputs, outputs, _| {
                callback(&mut CurrentPlugin::new(inner, &manifest), inputs, outputs)
            },
        );
        match &self.namespace {
            Some(ns) => f.with_namespace(ns.clone()),
            None => f,
        }
    }
}

/// Writes a host function whose arguments and result are decoded and encoded for you
/// (with [`FromBytes`](crate::FromBytes) and [`ToBytes`](crate::ToBytes)), in Extism's syntax:
///
/// ```
/// use extism::*;
/// # extern crate plinth_extism as extism;
/// // Without user data:
/// host_fn!(add_newline(a: String) -> String { Ok(a + "\n") });
/// // With user data, named before the `;`:
/// host_fn!(pub count(calls: u32; name: String) -> u32 {
///     let calls = calls.get()?;
///     let mut calls = calls.lock().unwrap();
///     *calls += 1;
///     Ok(*calls)
/// });
/// let f = Function::new("count", [PTR], [PTR], UserData::new(0u32), count);
/// ```
#[macro_export]
macro_rules! host_fn {
    ($vis:vis $name:ident ($($arg:ident : $argty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $crate::host_fn!($vis $name (user_data: (); $($arg : $argty),*) $(-> $ret)? $body);
    };
    ($vis:vis $name:ident ($user_data:ident : $udty:ty; $($arg:ident : $argty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $vis fn $name(
            plugin: &mut $crate::CurrentPlugin<'_, '_>,
            inputs: &[$crate::Val],
            outputs: &mut [$crate::Val],
            #[allow(unused_mut, unused_variables)] mut $user_data: $crate::UserData<$udty>,
        ) -> ::std::result::Result<(), $crate::Error> {
            let mut _index = 0usize;
            $(
                let $arg: $argty = {
                    let val = inputs.get(_index).ok_or_else(|| {
                        $crate::Error::msg(concat!(
                            "host function `", stringify!($name),
                            "` was called without its argument `", stringify!($arg), "`"
                        ))
                    })?;
                    _index += 1;
                    plugin.memory_get_val(val)?
                };
            )*
            let output = (move || -> ::std::result::Result<_, $crate::Error> { $body })()?;
            let handle = plugin.memory_new(&output)?;
            if let ::std::option::Option::Some(slot) = outputs.get_mut(0) {
                *slot = plugin.memory_to_val(handle);
            }
            ::std::result::Result::Ok(())
        }
    };
}
