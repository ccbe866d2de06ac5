//! Attributes of the Plinth Rust PDK. Use them through `plinth_pdk`, which they expand into.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, parse_quote, DeriveInput, Error, FnArg, ForeignItem, ItemFn, ItemForeignMod,
    LitStr, Path, ReturnType, Type,
};

/// Exports a function to the host: `#[plugin_fn] pub fn name(input: T) -> FnResult<U>`.
///
/// The input is decoded from the call's input with `FromBytesOwned` (the parameter may be
/// any pattern, such as `Json(x): Json<X>`, or absent), and the `Ok` value is written as the
/// call's output. An `Err` sets the call's error message and returns its code (1 by default).
#[proc_macro_attribute]
pub fn plugin_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return Error::new(Span::call_site(), "#[plugin_fn] takes no arguments")
            .to_compile_error()
            .into();
    }
    let func = parse_macro_input!(item as ItemFn);
    plugin_fn_impl(func)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

fn plugin_fn_impl(func: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    if sig.asyncness.is_some() {
        return Err(Error::new(
            sig.asyncness.span(),
            "a plug-in function cannot be async",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.generics.span(),
            "a plug-in function cannot be generic: the host calls it by name",
        ));
    }
    if let ReturnType::Default = sig.output {
        return Err(Error::new(
            sig.span(),
            "a plug-in function must return a result, e.g. `FnResult<String>` or `FnResult<()>`",
        ));
    }
    if sig.inputs.len() > 1 {
        return Err(Error::new(
            sig.inputs.span(),
            "a plug-in function takes at most one argument: the call's input (use Json<..> for several values)",
        ));
    }
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        return Err(Error::new(r.span(), "a plug-in function cannot take self"));
    }

    let name = &sig.ident;
    // Doc comments describe the export; other attributes (allow, cfg_attr, ...) concern the body.
    let (docs, others): (Vec<_>, Vec<_>) =
        func.attrs.iter().partition(|a| a.path().is_ident("doc"));
    let mut inner = func.clone();
    inner.attrs = others.into_iter().cloned().collect();
    inner.vis = syn::Visibility::Inherited;

    let run = if sig.inputs.is_empty() {
        quote!(::plinth_pdk::__private::run_export0(#name))
    } else {
        quote!(::plinth_pdk::__private::run_export(#name))
    };
    Ok(quote_spanned! {name.span()=>
        #(#docs)*
        #[unsafe(no_mangle)]
        pub extern "C" fn #name() -> i32 {
            #inner
            #run
        }
    })
}

/// Imports host functions: `#[host_fn] extern "ExtismHost" { fn name(a: T) -> U; }`.
///
/// Each function becomes a wasm import from `extism:host/user` (or the namespace given as
/// `#[host_fn("namespace")]`) taking and returning memory handles, plus an
/// `unsafe fn name(a: T) -> Result<U, plinth_pdk::Error>` that encodes the arguments into
/// memory and decodes the result.
#[proc_macro_attribute]
pub fn host_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    let namespace = if attr.is_empty() {
        LitStr::new("extism:host/user", Span::call_site())
    } else {
        parse_macro_input!(attr as LitStr)
    };
    let block = parse_macro_input!(item as ItemForeignMod);
    host_fn_impl(namespace, block)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

fn host_fn_impl(namespace: LitStr, block: ItemForeignMod) -> syn::Result<TokenStream2> {
    match block.abi.name.as_ref().map(LitStr::value).as_deref() {
        Some("ExtismHost") => {}
        _ => {
            return Err(Error::new(
                block.abi.span(),
                "#[host_fn] expects an `extern \"ExtismHost\" { .. }` block",
            ))
        }
    }
    let mut out = TokenStream2::new();
    for item in &block.items {
        let ForeignItem::Fn(f) = item else {
            return Err(Error::new(
                item.span(),
                "only functions can be imported with #[host_fn]",
            ));
        };
        let sig = &f.sig;
        if let Some(v) = &sig.variadic {
            return Err(Error::new(v.span(), "host functions cannot be variadic"));
        }
        if !sig.generics.params.is_empty() {
            return Err(Error::new(
                sig.generics.span(),
                "host functions cannot be generic",
            ));
        }
        let name = &sig.ident;
        let import_name = LitStr::new(&name.to_string(), name.span());
        let raw = format_ident!("__plinth_host_{}", name);
        let vis = &f.vis;
        let attrs = &f.attrs;

        let mut params = Vec::new();
        let mut raw_params = Vec::new();
        let mut encode = Vec::new();
        let mut handles = Vec::new();
        let mut owned = Vec::new();
        for (i, arg) in sig.inputs.iter().enumerate() {
            let FnArg::Typed(arg) = arg else {
                return Err(Error::new(arg.span(), "host functions cannot take self"));
            };
            let ty = &arg.ty;
            let value = format_ident!("__arg{}", i);
            let handle = format_ident!("__mem{}", i);
            let own = format_ident!("__own{}", i);
            params.push(quote!(#value: #ty));
            raw_params.push(quote!(#value: u64));
            encode.push(quote! {
                let #own = ::plinth_pdk::ToMemory::allocates(&#value);
                let #handle = ::plinth_pdk::ToMemory::to_memory(&#value)?;
            });
            handles.push(handle);
            owned.push(own);
        }

        let returns_unit = match &sig.output {
            ReturnType::Default => true,
            ReturnType::Type(_, ty) => matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()),
        };
        let body = if returns_unit {
            quote! {
                unsafe { #raw(#(#handles.offset()),*) };
                #(::plinth_pdk::__private::free_arg(#handles, #owned, 0);)*
                Ok(())
            }
        } else {
            quote! {
                let __out = unsafe { #raw(#(#handles.offset()),*) };
                let __result = ::plinth_pdk::__private::from_host(__out);
                // The host may have reused a freed argument's block for its result.
                #(::plinth_pdk::__private::free_arg(#handles, #owned, __out);)*
                __result
            }
        };
        let (raw_ret, ret) = if returns_unit {
            (quote!(), quote!(()))
        } else {
            let ReturnType::Type(_, ty) = &sig.output else {
                unreachable!()
            };
            (quote!(-> u64), quote!(#ty))
        };
        out.extend(quote! {
            #[link(wasm_import_module = #namespace)]
            unsafe extern "C" {
                #[link_name = #import_name]
                fn #raw(#(#raw_params),*) #raw_ret;
            }

            #(#attrs)*
            #[allow(unused_unsafe)]
            #vis unsafe fn #name(#(#params),*) -> ::core::result::Result<#ret, ::plinth_pdk::Error> {
                #(#encode)*
                #body
            }
        });
    }
    Ok(out)
}

/// Implements `ToBytes` by way of an encoding: `#[derive(ToBytes)] #[encoding(Json)]`.
#[proc_macro_derive(ToBytes, attributes(encoding))]
pub fn derive_to_bytes(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as DeriveInput);
    derive_to_bytes_impl(input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// Implements `FromBytesOwned` by way of an encoding: `#[derive(FromBytes)] #[encoding(Json)]`.
#[proc_macro_derive(FromBytes, attributes(encoding))]
pub fn derive_from_bytes(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as DeriveInput);
    derive_from_bytes_impl(input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// The wrapper named by `#[encoding(..)]`, e.g. `Json` or `plinth_pdk::Msgpack`.
fn encoding(input: &DeriveInput) -> syn::Result<Path> {
    let mut found = None;
    for attr in &input.attrs {
        if attr.path().is_ident("encoding") {
            if found.is_some() {
                return Err(Error::new(
                    attr.span(),
                    "only one #[encoding(..)] is allowed",
                ));
            }
            found = Some(attr.parse_args::<Path>()?);
        }
    }
    found.ok_or_else(|| {
        Error::new(
            input.ident.span(),
            "add #[encoding(Json)] (or Msgpack, ...) to say how the type is encoded",
        )
    })
}

fn derive_to_bytes_impl(input: DeriveInput) -> syn::Result<TokenStream2> {
    let enc = encoding(&input)?;
    let name = &input.ident;
    let mut generics = input.generics.clone();
    generics.params.insert(0, parse_quote!('__plinth));
    let (impl_generics, _, _) = generics.split_for_impl();
    let (_, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::plinth_pdk::ToBytes<'__plinth> for #name #ty_generics #where_clause {
            type Bytes = ::std::vec::Vec<u8>;
            fn to_bytes(&self) -> ::core::result::Result<Self::Bytes, ::plinth_pdk::convert::Error> {
                // Json and Msgpack give a Vec, Base64 a String: both become a Vec without a copy.
                let bytes = ::plinth_pdk::ToBytes::to_bytes(&#enc(self))?;
                ::core::result::Result::Ok(::core::convert::Into::into(bytes))
            }
        }
    })
}

fn derive_from_bytes_impl(input: DeriveInput) -> syn::Result<TokenStream2> {
    let enc = encoding(&input)?;
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::plinth_pdk::FromBytesOwned for #name #ty_generics #where_clause {
            fn from_bytes_owned(data: &[u8]) -> ::core::result::Result<Self, ::plinth_pdk::convert::Error> {
                let #enc(value) = <#enc<Self> as ::plinth_pdk::FromBytesOwned>::from_bytes_owned(data)?;
                ::core::result::Result::Ok(value)
            }
        }
    })
}
