use proptest::prelude::*;

use super::*;

fn extractor(source: &str) -> KeyExtractor {
    KeyExtractor::new(source.parse().unwrap())
}

#[test]
fn percent_decoding() {
    assert!(matches!(
        percent_decode(b"plain+text"),
        Cow::Borrowed(b"plain+text")
    ));
    assert_eq!(&*percent_decode(b"a%20b%2fc"), b"a b/c");
    assert_eq!(&*percent_decode(b"100%"), b"100%");
    assert_eq!(&*percent_decode(b"%zz%4"), b"%zz%4");
    assert_eq!(&*percent_decode(b"%ff"), b"\xff");
}

#[test]
fn headers_borrow_and_trim() {
    let request = Request::builder()
        .header("x-api-key", "  k-1 ")
        .header("x-api-key", "k-2")
        .body(())
        .unwrap();
    let key = extractor("header.x-api-key").extract(&request);
    assert!(matches!(key, Extracted::Key(Cow::Borrowed(b"k-1"))));
}

#[test]
fn query_params() {
    let e = extractor("query.k");
    let get = |uri: &str| {
        let request = Request::get(uri).body(()).unwrap();
        e.extract(&request).into_owned()
    };
    assert_eq!(get("/?a=1&k=v&k=w").as_bytes(), Some(&b"v"[..]));
    assert_eq!(get("/?k"), Extracted::Missing);
    assert_eq!(get("/?k=&k=x"), Extracted::Missing);
    assert_eq!(get("/?kk=1"), Extracted::Missing);
    assert_eq!(get("/"), Extracted::Missing);
    assert_eq!(get("/?k=a+b").as_bytes(), Some(&b"a+b"[..]));
    let long = format!("/?k={}", "%41".repeat(256));
    assert_eq!(get(&long).as_bytes().map(<[u8]>::len), Some(256));
    let too_long = format!("/?k={}", "%41".repeat(257));
    assert_eq!(get(&too_long), Extracted::TooLong);
}

proptest! {
    #[test]
    fn decoding_inverts_encoding(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        prop_assert_eq!(&*percent_decode(encoded.as_bytes()), &bytes[..]);
    }

    #[test]
    fn cookies_find_the_first_match(
        values in prop::collection::vec("[a-zA-Z0-9]{0,8}", 1..5),
        pick in 0usize..5,
    ) {
        let pick = pick % values.len();
        let line: Vec<String> = values.iter().enumerate()
            .map(|(i, v)| if i == pick { format!(" id = {v} ") } else { format!("c{i}={v}") })
            .collect();
        let request = Request::builder().header("cookie", line.join(";")).body(()).unwrap();
        let found = extractor("cookie.id").extract(&request);
        if values[pick].is_empty() {
            prop_assert_eq!(found, Extracted::Missing);
        } else {
            prop_assert_eq!(found.as_bytes(), Some(values[pick].as_bytes()));
        }
    }

    #[test]
    fn hashes_are_stable_and_never_panic(key in prop::collection::vec(any::<u8>(), 0..300)) {
        let extracted = KeyExtractor::new("header.k".parse().unwrap()).check(Cow::Borrowed(&key));
        match &extracted {
            Extracted::Key(bytes) => prop_assert_eq!(extracted.hash64(), Some(fnv1a(bytes))),
            other => prop_assert!(key.is_empty() || key.len() > DEFAULT_MAX_KEY_LEN, "{:?}", other),
        }
    }
}
