use egnyte_receiver::*;
fn main() {
    let mut p = Parser::new(Limits::default().max_depth(3));
    let cases: Vec<&[u8]> = vec![
        b"[{\"eventId\":\"a\x01b\",\"domain\":\"d\",\"timestamp\":1,\"data\":{},\"actionSource\":\"x\",\"eventType\":\"fs:add_file\"}]",
        b"[[[]]]", b"[[[[]]]]", b"[1,2", b"[1] x", b"\"hi\"", b"42", b"[\xff]", b"[\"\\ud800\"]", b"[] []", b"[1,]", b"{\"a\":1,}",
        b"[1e99999]", b"[123456789012345678901234567890]", b"[-0]", b"[ 1 , {\"a\" : [ 2 ] } , \"x\" ]  ",
    ];
    for c in cases {
        match p.parse(c) {
            Ok(b) => {
                println!("{:?} -> ok {} elems", String::from_utf8_lossy(c), b.len());
                for e in b.elements() {
                    match e {
                        Element::Valid(ev) => println!(
                            "   valid {:?} raw={:?}",
                            ev.event_id(),
                            String::from_utf8_lossy(ev.raw())
                        ),
                        Element::Invalid(i) => println!(
                            "   invalid #{} {} raw={:?}",
                            i.index(),
                            i.reason(),
                            String::from_utf8_lossy(i.raw())
                        ),
                    }
                }
            }
            Err(e) => println!("{:?} -> {e} ({e:?})", String::from_utf8_lossy(c)),
        }
    }
}
