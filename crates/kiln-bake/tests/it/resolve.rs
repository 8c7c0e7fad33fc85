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
fn targets_read_other_targets_own_attributes() {
    // `target.NAME.ATTR` is the attribute as that block sets it: inherited values
    // and defaults are not there (null), as in buildx.
    let hcl = r#"
        target "foo" {
          cache-from = ["type=registry,ref=${target.bar.tags[0]}"]
          args = { D = jsonencode(target.bar.dockerfile) }
        }
        target "base" { dockerfile = "base.Dockerfile" }
        target "bar" {
          inherits = ["base"]
          tags = ["myapp:latest"]
        }
    "#;
    let out = print(hcl, &["foo"]).expect("resolves");
    assert_eq!(out["target"]["foo"]["args"], json!({"D": "null"}));
    assert_eq!(
        out["target"]["foo"]["cache-from"],
        json!([{"type": "registry", "ref": "myapp:latest"}])
    );
    let err = print(
        "target \"foo\" {\n  dockerfile = \"${target.foo.context}/Dockerfile\"\n}\n",
        &["foo"],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("Invalid template interpolation value; The expression result is null."),
        "{err}"
    );
}

#[test]
fn a_target_attribute_defined_by_itself_is_an_error() {
    let err = print("target \"a\" {\n  tags = target.a.tags\n}\n", &["a"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("reference cycle not allowed for target.a.tags"),
        "{err}"
    );
}

#[test]
fn time_network_and_conversion_functions_resolve() {
    let hcl = r#"
        variable "BUILT" { default = "2018-01-02T23:12:01Z" }
        target "app" {
          args = {
            DATE    = formatdate("DD MMM YYYY hh:mm ZZZ", BUILT)
            LATER   = timeadd(BUILT, "1h30m")
            SUBNET  = cidrsubnet("10.1.2.0/24", 4, 15)
            HOST    = cidrhost("10.12.112.0/20", 16)
            MASK    = cidrnetmask("172.16.0.0/12")
            NETS    = join(",", cidrsubnets("10.1.0.0/16", 4, 4, 8, 4))
            PORT    = convert(8080, string)
            ID      = "${strlen(uuidv4())}"
          }
        }
    "#;
    let out = print(hcl, &["app"]).expect("resolves");
    assert_eq!(
        out["target"]["app"]["args"],
        json!({
            "DATE": "02 Jan 2018 23:12 UTC",
            "LATER": "2018-01-03T00:42:01Z",
            "SUBNET": "10.1.2.240/28",
            "HOST": "10.12.112.16",
            "MASK": "255.240.0.0",
            "NETS": "10.1.0.0/20,10.1.16.0/20,10.1.32.0/24,10.1.48.0/20",
            "PORT": "8080",
            "ID": "36",
        })
    );
}

#[test]
fn unsupported_crypto_functions_say_so() {
    let hcl = "target \"app\" {\n  args = { H = bcrypt(\"secret\") }\n}\n";
    let err = print(hcl, &["app"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("bcrypt is not supported by kiln yet"),
        "{err}"
    );
}

#[test]
fn basename_is_gos_path_base() {
    // As buildx v0.28 prints it: `basename("")` is ".".
    let hcl = r#"
        target "a" {
          args = { B = basename(""), C = basename("/"), D = basename("a/b/"), E = basename("///") }
        }
    "#;
    let out = print(hcl, &["a"]).expect("resolves");
    assert_eq!(
        out["target"]["a"]["args"],
        json!({"B": ".", "C": "/", "D": "b", "E": "/"})
    );
}
