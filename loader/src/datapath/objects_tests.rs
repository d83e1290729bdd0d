//! The declarations in objects.rs and pins.rs against the built objects, as
//! libbpf reads them (bpf_object__open, then every program and map).

use super::*;
use crate::datapath::pins::ALL_MAPS;

#[test]
fn the_declarations_match_the_built_objects() {
    if let Err(errors) = check_declarations() {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("bpf/ and loader/src/datapath/{{objects,pins}}.rs disagree:\n{}", errors.join("\n"));
    }
}

#[test]
fn a_program_of_the_objects_without_a_declaration_is_caught() {
    let fewer: Vec<ProgramSpec> = PROGRAMS.iter().copied().filter(|p| p.program != TC_EGRESS.program).collect();
    let errors = compare(WITH_PROGRAMS, &fewer, ALL_MAPS);
    assert_eq!(errors, vec![DeclarationMismatch::UndeclaredProgram { object: "meshwire_tc", program: "mw_tc_egress".into() }]);
    assert_eq!(errors[0].to_string(), "meshwire_tc: program mw_tc_egress is not declared in loader/src/datapath/objects.rs");
}

#[test]
fn a_declared_program_no_object_has_is_caught() {
    let more: Vec<ProgramSpec> = PROGRAMS.iter().copied().chain([ProgramSpec { object: &TC, program: "mw_tc_gone", hook: Hook::Cgroup }]).collect();
    let errors = compare(WITH_PROGRAMS, &more, ALL_MAPS);
    assert_eq!(errors, vec![DeclarationMismatch::ProgramNotBuilt { object: "meshwire_tc", program: "mw_tc_gone".into() }]);
    assert_eq!(errors[0].to_string(), "meshwire_tc: declared program mw_tc_gone is not in the object (remove it from loader/src/datapath/objects.rs, or rebuild bpf/)");
}

#[test]
fn a_map_without_a_declaration_and_a_declared_map_no_object_has_are_caught() {
    let maps: Vec<&str> = ALL_MAPS.iter().copied().filter(|m| *m != crate::datapath::pins::MAP_FLOW4_SYN).chain(["mw_gone"]).collect();
    let errors = compare(WITH_PROGRAMS, PROGRAMS, &maps);
    assert_eq!(
        errors,
        vec![DeclarationMismatch::UndeclaredMap { map: "mw_flow4_syn".into() }, DeclarationMismatch::MapNotBuilt { map: "mw_gone".into() }]
    );
}

#[test]
fn a_socket_map_without_the_sk_msg_program_and_an_attachment_to_another_map_are_caught() {
    use crate::datapath::pins::{MAP_POD_IPS, MAP_SOCK_HASH};
    let programs = |maps: &'static [&'static str]| -> Vec<ProgramSpec> {
        PROGRAMS
            .iter()
            .map(|p| match p.hook {
                Hook::SkMsg { .. } => ProgramSpec { hook: Hook::SkMsg { maps }, ..*p },
                _ => *p,
            })
            .collect()
    };
    let errors = compare(WITH_PROGRAMS, &programs(&[MAP_SOCK_HASH]), ALL_MAPS);
    assert_eq!(errors, vec![DeclarationMismatch::SocketMapWithoutSkMsg { map: "mw_sock_hash6".into() }]);
    assert_eq!(errors[0].to_string(), "socket map mw_sock_hash6 has no sk_msg program attached (Hook::SkMsg in loader/src/datapath/objects.rs)");
    let errors = compare(WITH_PROGRAMS, &programs(&[MAP_SOCK_HASH, crate::datapath::pins::MAP_SOCK_HASH6, MAP_POD_IPS]), ALL_MAPS);
    assert_eq!(errors, vec![DeclarationMismatch::SkMsgOnOtherMap { map: "mw_pod_ips".into() }]);
}

#[test]
fn a_name_without_the_prefix_is_caught() {
    // The real objects against a narrower prefix: every program and map
    // not named mw_tc_ is reported, each with its object, and nothing else.
    let errors = compare_prefixed(&[&TC], PROGRAMS, &[], "mw_tc_");
    let unprefixed: Vec<DeclarationMismatch> = errors.into_iter().filter(|e| matches!(e, DeclarationMismatch::Unprefixed { .. })).collect();
    let obj = TC.open(None).unwrap();
    let programs: BTreeSet<String> = obj.program_names().into_iter().collect();
    let maps: BTreeSet<String> = obj.declared_maps().into_iter().map(|(m, _)| m).collect();
    let expected: Vec<DeclarationMismatch> = programs
        .iter()
        .chain(&maps)
        .filter(|n| !n.starts_with("mw_tc_"))
        .map(|n| DeclarationMismatch::Unprefixed { object: "meshwire_tc", name: n.clone(), prefix: "mw_tc_" })
        .collect();
    assert!(!expected.is_empty(), "the tc object has maps not named mw_tc_");
    assert_eq!(unprefixed, expected);
    assert!(unprefixed[0].to_string().starts_with("meshwire_tc: mw_") && unprefixed[0].to_string().ends_with(" does not start with mw_tc_"), "{}", unprefixed[0]);
    assert!(compare_prefixed(&[&TC], PROGRAMS, &[], NAME_PREFIX).iter().all(|e| !matches!(e, DeclarationMismatch::Unprefixed { .. })));
}

/// bpf/testdata/unpinned_map.c: two maps, mw_t_pinned pinned by name and
/// mw_t_unpinned not (no program; its mw_cfg is the datapath's).
const UNPINNED_MAP: ObjectSpec = bpf_object!("meshwire_test_unpinned");

/// A map of an object without LIBBPF_PIN_BY_NAME, as libbpf opens the
/// built object: exactly that map is reported, with what to do, and a
/// start refuses the build with it (Internal).
#[test]
fn a_map_not_pinned_by_name_is_caught() {
    let maps = ["mw_t_pinned", "mw_t_unpinned"];
    let errors = compare(&[&UNPINNED_MAP], &[], &maps);
    assert_eq!(errors, vec![DeclarationMismatch::MapNotPinned { object: "meshwire_test_unpinned", map: "mw_t_unpinned".into() }]);
    let text = "meshwire_test_unpinned: map mw_t_unpinned is not pinned by name: declare it with __uint(pinning, LIBBPF_PIN_BY_NAME), as bpf/lib/meshwire_maps.h does every map (the objects share a map, and a restarted loader finds it, through its pin)";
    assert_eq!(errors[0].to_string(), text);

    // What install's first check answers with such an object among the declared ones.
    let refused = crate::datapath::check_layouts_with(&ALIGNCHECKER, crate::datapath::layout::check_against_btf, || Err(compare(&[&UNPINNED_MAP], &[], &maps)));
    let e = crate::error::Error::from(refused.unwrap_err());
    assert!(matches!(&e, crate::error::Error::Internal(m) if m.ends_with(&format!("(bazel build //loader):\n{text}"))), "{e:?}");
}

/// bpf/testdata/no_btf.c, compiled with -g0: an object libbpf opens
/// that carries no BTF (one program, no map).
const NO_BTF: ObjectSpec = bpf_object!("meshwire_test_no_btf");

/// The check every start makes first, given an object without BTF to
/// compare the mirrors with (a broken build): BuildMismatch::NoBtf naming
/// that object, before the mirrors or the declarations are looked at; as
/// an Error it is Internal, saying to rebuild.
#[test]
fn an_object_without_btf_is_a_build_mismatch_naming_it() {
    let obj = NO_BTF.open(None).unwrap();
    assert_eq!(obj.program_names(), ["mw_t_no_btf"], "libbpf reads the object");
    assert!(Btf::of_object(&obj).is_none(), "the object has BTF: is it compiled with -g0 (bpf/BUILD.bazel)?");
    let e = crate::datapath::check_layouts_with(&NO_BTF, |_| panic!("no BTF to check the mirrors with"), || panic!("the declarations are not looked at")).unwrap_err();
    assert_eq!(e, crate::datapath::BuildMismatch::NoBtf { object: "meshwire_test_no_btf" });
    let e = crate::error::Error::from(e);
    assert_eq!(e, crate::error::Error::Internal("the meshwire_test_no_btf object has no BTF (a broken build: rebuild bpf/, bazel build //loader)".into()));
    // The object that carries the mirrors' BTF has it.
    assert!(Btf::of_object(&ALIGNCHECKER.open(None).unwrap()).is_some());
}

#[test]
fn an_object_without_the_settings_variable_is_caught() {
    // The alignchecker is never loaded: it carries BTF, no mw_cfg.
    assert_eq!(compare(&[&ALIGNCHECKER], &[], &[]), vec![DeclarationMismatch::NoSettings { object: "meshwire_alignchecker" }]);
}

#[test]
fn an_object_libbpf_cannot_open_is_named_with_what_libbpf_said() {
    let broken = ObjectSpec { name: "meshwire_broken", elf: b"not an ELF object" };
    let errors = compare(&[&broken], &[], &[]);
    assert!(matches!(&errors[..], [DeclarationMismatch::Unreadable { object: "meshwire_broken", error }] if !error.is_empty()), "{errors:?}");
}

#[test]
fn the_alignchecker_object_has_no_programs() {
    assert_eq!(ALIGNCHECKER.open(None).unwrap().program_names(), Vec::<String>::new());
}

#[test]
fn the_core_objects_and_acceleration_are_all_the_objects_with_programs() {
    let mut names: Vec<&str> = CORE.iter().map(|o| o.name).chain([SKMSG.name]).collect();
    let mut with_programs: Vec<&str> = WITH_PROGRAMS.iter().map(|o| o.name).collect();
    names.sort();
    with_programs.sort();
    assert_eq!(names, with_programs);
}

/// The verifier sees mw_cfg as constants and drops the branches a setting
/// turns off, so each setting's code is only verified when it is on: every
/// object loads with every interception.ipv6 policy, acceleration and trace
/// on and off, debug on (bpf_printk in each decision).
#[test]
fn every_object_verifies_with_every_setting() {
    use crate::datapath::layout::{Settings, IPV6_INTERCEPT, IPV6_PASS, IPV6_REFUSE};
    use crate::datapath::pins::Pins;
    use crate::testutil::PrivateBpffs;

    for ipv6 in [IPV6_PASS, IPV6_REFUSE, IPV6_INTERCEPT] {
        for on in [0, 1] {
            let s = Settings { sidecar_uid: 1500, outbound_port: 15001, inbound_port: 15003, debug: on, accel: on, trace: on, ipv6, dns_port: 15053, dns_servers: on, out_sources: 1, accel_short: 1, pad: [0; 3] };
            for object in WITH_PROGRAMS {
                let fs = PrivateBpffs::new();
                let pins = Pins::new(&fs.path().join("meshwire"));
                pins.create_dirs().unwrap();
                let mut obj = object.open(Some(&pins.maps_dir())).unwrap();
                obj.set_rodata(SETTINGS_VAR, s.as_bytes()).unwrap();
                obj.load().unwrap_or_else(|e| panic!("load {} with {s:?} (see the verifier log): {e}", object.name));
            }
        }
    }
}
