//! Serde helpers shared by the dialects' wire types, for reading arrays
//! without allocating: a stream event that holds an array (OpenAI's
//! `choices`, Gemini's `candidates` and `parts`) must not cost a `Vec` per
//! event.

use serde::Deserialize;

use crate::raw::Raw;

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
