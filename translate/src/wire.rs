//! Serde helpers shared by the dialects' wire types: [`from_slice`], the
//! one entry from bytes, and readers of arrays that do not allocate (a
//! stream event that holds an array, OpenAI's `choices`, Gemini's
//! `candidates` and `parts`, must not cost a `Vec` per event).

use serde::Deserialize;

use crate::raw::Raw;

/// Deserializes `T` from bytes that must be UTF-8 JSON. sonic-rs's own
/// `from_slice` checks UTF-8 only at the end, after it has handed borrowed
/// `&str`s of the invalid bytes to the visitors (a debug assertion in
/// sonic-rs fires on them); checking first keeps every [`Raw`] valid text.
pub fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, sonic_rs::Error> {
    let text = simdutf8::basic::from_utf8(bytes)
        .map_err(|_| <sonic_rs::Error as serde::de::Error>::custom("the body is not valid UTF-8"))?;
    sonic_rs::from_str(text)
}

/// Deserializes an array's first element and skips the others: `None` for
/// `null`, `Some(None)` for an empty array.
pub fn first_element<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct First<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for First<T> {
        type Value = Option<Option<T>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<T>()?;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(Some(first))
        }
    }
    d.deserialize_any(First(std::marker::PhantomData))
}

/// Calls `f` with each element of a raw JSON array that reads as a `T`;
/// elements that do not are skipped. Nothing is allocated.
pub fn for_each_element<'a, T: Deserialize<'a>>(array: &Raw<'a>, mut f: impl FnMut(T)) {
    let Some(text) = array.as_borrowed().filter(|_| array.is_array()) else { return };
    for element in sonic_rs::to_array_iter(text).flatten() {
        if let std::borrow::Cow::Borrowed(json) = element.as_raw_cow()
            && let Ok(value) = sonic_rs::from_str::<T>(json)
        {
            f(value);
        }
    }
}

/// Deserializes an array into a `Vec` that starts with room for 16 elements:
/// sonic-rs gives serde no length hint, so a default `Vec` grows 4, 8, 16,
/// moving every large element each time (a chat's messages).
pub fn vec_with_room<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    /// Elements allocated for up front.
    const ELEMENTS_RESERVED: usize = 16;
    struct Elements<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Elements<T> {
        type Value = Option<Vec<T>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(ELEMENTS_RESERVED));
            while let Some(element) = seq.next_element::<T>()? {
                out.push(element);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(Elements(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use crate::stream::Dialect;

    /// Invalid UTF-8 inside a string is refused before any value is read
    /// (sonic-rs alone would hand the visitors invalid `&str`s first, which
    /// panics its debug assertion).
    #[test]
    fn invalid_utf8_is_refused_before_parsing() {
        assert!(super::from_slice::<crate::raw::Raw<'_>>(b"\"ok \xff\"").is_err());
        let anthropic =
            b"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}";
        for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
            let error = crate::parse_request(dialect, anthropic).unwrap_err();
            assert!(error.to_string().contains("UTF-8"), "{error}");
        }
    }
}
