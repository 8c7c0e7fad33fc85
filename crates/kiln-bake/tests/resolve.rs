//! Resolution rules the conformance cases do not pin down, checked end to end.

use std::collections::BTreeMap;

use serde_json::json;

fn print(hcl: &str, targets: &[&str]) -> Result<serde_json::Value, kiln_bake::Error> {
    let dir = tempfile::tempdir().expect("temp dir");
    fs_err::write(dir.path().join("docker-bake.hcl"), hcl).expect("write bake file");
    let request = kiln_bake::Request {
        dir: dir.path().to_path_buf(),
        env: BTreeMap::new(),
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    };
    kiln_bake::resolve(&request).map(|r| r.to_json())
}

#[test]
fn targets_read_other_targets_attributes() {
    let hcl = r#"
        target "foo" {
          dockerfile = "${target.foo.context}/Dockerfile"
          cache-from = ["type=registry,ref=${target.bar.tags[0]}"]
        }
        target "base" { args = { A = "1" } }
        target "bar" {
          inherits = ["base"]
          tags = ["myapp:latest"]
        }
    "#;
    let out = print(hcl, &["foo"]).expect("resolves");
    assert_eq!(out["target"]["foo"]["dockerfile"], json!("./Dockerfile"));
    assert_eq!(
        out["target"]["foo"]["cache-from"],
        json!([{"type": "registry", "ref": "myapp:latest"}])
    );
}

#[test]
fn a_target_attribute_defined_by_itself_is_an_error() {
    let err = print("target \"a\" {\n  tags = target.a.tags\n}\n", &["a"]).unwrap_err();
    assert!(err.to_string().contains("refers to itself"), "{err}");
}
