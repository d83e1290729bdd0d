//! The control protocol's request parser (meshwire_api::parse_request), as
//! the loader runs it on each line a client sends: it never panics, a bad
//! line gets an error response, a good one survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshwire_api::{parse_request, Response, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if line.len() > MAX_LINE {
        return; // the server refuses these before parsing
    }
    match parse_request(line) {
        Ok(req) => {
            let again = serde_json::to_string(&req).expect("a parsed request serializes");
            assert!(!again.contains('\n'), "a request is one line");
            assert_eq!(parse_request(&again).expect("what was written back parses"), req);
        }
        Err(resp) => {
            assert!(!resp.ok && resp.result.is_none(), "{resp:?}");
            let err = resp.error.as_ref().expect("an error response carries an error");
            assert!(!err.message.is_empty());
            // The error answer itself is one valid response line.
            let wire = serde_json::to_string(&resp).unwrap();
            assert!(!wire.contains('\n'));
            assert_eq!(serde_json::from_str::<Response>(&wire).unwrap(), resp);
        }
    }
});
