//! `#[derive(ToBytes)]` and `#[derive(FromBytes)]` with `#[encoding(Json)]` (or any
//! `Wrapper<T>(pub T)` encoding), as `extism-convert` derives them, for `plinth-extism`.
//! Use them through `extism::convert::{ToBytes, FromBytes}`.

use proc_macro::TokenStream;
use proc_macro2::Span;
use proc_macro_crate::{crate_name, FoundCrate};
use quote::quote;
use syn::{parse_macro_input, parse_quote, Attribute, DeriveInput, Error, Ident, Path};

/// Where the traits live in the crate being compiled: `::extism::convert` when the host took
/// the facade as `extism` (the drop-in case), `::plinth_extism::convert` when it did not.
fn convert_path() -> Path {
    let name = match crate_name("plinth-extism") {
        Ok(FoundCrate::Name(name)) => name,
        // Inside plinth-extism itself, its tests reach it as `extism`.
        Ok(FoundCrate::Itself) | Err(_) => "extism".to_string(),
    };
    let ident = Ident::new(&name, Span::call_site());
    parse_quote!(::#ident::convert)
}

/// The path inside the one `#[encoding(..)]` attribute.
fn encoding(input: &DeriveInput) -> Result<Path, Error> {
    let found: Vec<&Attribute> = input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("encoding"))
        .collect();
    match found.as_slice() {
        [one] => one.parse_args::<Path>(),
        [] => Err(Error::new_spanned(
            &input.ident,
            "name the encoding with an attribute, for example `#[encoding(Json)]`",
        )),
        [_, second, ..] => Err(Error::new_spanned(
            second,
            "only one `#[encoding(..)]` may be given",
        )),
    }
}

/// `impl ToBytes` that encodes `&self` with the encoding wrapper.
#[proc_macro_derive(ToBytes, attributes(encoding))]
pub fn derive_to_bytes(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let enc = match encoding(&input) {
        Ok(p) => p,
        Err(e) => return e.to_compile_error().into(),
    };
    let convert = convert_path();
    let ident = &input.ident;
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let mut generics = input.generics.clone();
    generics.make_where_clause().predicates.push(
        parse_quote!(for<'__plinth_b> #enc<&'__plinth_b Self>: #convert::ToBytes<'__plinth_b>),
    );
    generics.params.insert(0, parse_quote!('__plinth_a));
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    quote! {
        impl #impl_generics #convert::ToBytes<'__plinth_a> for #ident #ty_generics #where_clause {
            type Bytes = ::std::vec::Vec<u8>;
            fn to_bytes(&self) -> ::std::result::Result<Self::Bytes, #convert::Error> {
                let encoded = #convert::ToBytes::to_bytes(&#enc(self))?;
                ::std::result::Result::Ok(::std::convert::AsRef::<[u8]>::as_ref(&encoded).to_vec())
            }
        }
    }
    .into()
}

/// `impl FromBytesOwned` that decodes through the encoding wrapper and unwraps it.
#[proc_macro_derive(FromBytes, attributes(encoding))]
pub fn derive_from_bytes(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let enc = match encoding(&input) {
        Ok(p) => p,
        Err(e) => return e.to_compile_error().into(),
    };
    let convert = convert_path();
    let ident = &input.ident;
    let mut generics = input.generics.clone();
    generics
        .make_where_clause()
        .predicates
        .push(parse_quote!(#enc<Self>: #convert::FromBytesOwned));
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        impl #impl_generics #convert::FromBytesOwned for #ident #ty_generics #where_clause {
            fn from_bytes_owned(data: &[u8]) -> ::std::result::Result<Self, #convert::Error> {
                let decoded = <#enc<Self> as #convert::FromBytesOwned>::from_bytes_owned(data)?;
                ::std::result::Result::Ok(decoded.0)
            }
        }
    }
    .into()
}
