//! `kiln_bake::list`: what `bake --list` shows of a definition, end to end.

use std::collections::BTreeMap;

use kiln_bake::{ListedGroup, ListedTarget, ListedVariable, Listing, TargetRow};

fn list_files(files: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Listing, kiln_bake::Error> {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        fs_err::write(dir.path().join(name), text).expect("write bake file");
    }
    let request = kiln_bake::Request {
        files: files.iter().map(|(n, _)| (*n).to_owned()).collect(),
        dir: dir.path().to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        // Requested targets and overrides play no part in a listing.
        targets: vec!["nothing-by-this-name".to_owned()],
        sets: vec!["nothing.tags=x".to_owned()],
        ..Default::default()
    };
    kiln_bake::list(&request)
}

fn list(hcl: &str) -> Listing {
    list_files(&[("docker-bake.hcl", hcl)], &[]).expect("lists")
}

fn var(name: &str, type_name: &str, value: Option<&str>, description: &str) -> ListedVariable {
    ListedVariable {
        name: name.to_owned(),
        type_name: type_name.to_owned(),
        value: value.map(str::to_owned),
        description: description.to_owned(),
    }
}

#[test]
fn every_target_and_group_is_listed_with_its_own_description() {
    let listing = list(
        r#"
        variable "APP" { default = "web" }
        group "default" {
          description = "Everything for ${APP}"
          targets = ["web", "api", "web"]
        }
        group "ci" { targets = ["api"] }
        target "_base" { description = "Shared settings" }
        target "web" {
          inherits = ["_base"]
          description = "The ${APP} site"
        }
        target "api" { inherits = ["_base", "missing"] }
        "#,
    );
    assert_eq!(
        listing.targets,
        [
            ListedTarget {
                name: "_base".into(),
                description: "Shared settings".into()
            },
            ListedTarget {
                name: "web".into(),
                description: "The web site".into()
            },
            // Not inherited, and `inherits` is not followed.
            ListedTarget {
                name: "api".into(),
                description: String::new()
            },
        ]
    );
    assert_eq!(
        listing.groups,
        // In definition order, as buildx's `Config` holds them.
        [
            ListedGroup {
                name: "default".into(),
                description: "Everything for web".into(),
                targets: vec!["web".into(), "api".into()]
            },
            ListedGroup {
                name: "ci".into(),
                description: String::new(),
                targets: vec!["api".into()]
            },
        ]
    );
    let rows: Vec<TargetRow> = listing.target_rows();
    let names: Vec<(&str, &str, bool)> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.description.as_str(), r.group))
        .collect();
    assert_eq!(
        names,
        [
            ("api", "", false),
            ("ci", "api", true),
            ("default", "Everything for web (api, web)", true),
            ("web", "The web site", false),
        ]
    );
}

#[test]
fn matrix_targets_are_listed_by_generated_name_under_a_group() {
    let listing = list(
        r#"
        target "app" {
          matrix = { tgt = ["b", "a"] }
          name = "app-${tgt}"
          description = "App ${tgt}"
        }
        "#,
    );
    let targets: Vec<(&str, &str)> = listing
        .targets
        .iter()
        .map(|t| (t.name.as_str(), t.description.as_str()))
        .collect();
    assert_eq!(targets, [("app-b", "App b"), ("app-a", "App a")]);
    assert_eq!(
        listing.groups,
        [ListedGroup {
            name: "app".into(),
            description: String::new(),
            targets: vec!["app-b".into(), "app-a".into()]
        }]
    );
}

#[test]
fn variables_show_type_value_and_description_as_buildx_does() {
    let listing = list_files(
        &[(
            "docker-bake.hcl",
            r#"
            variable "foo" {
              default = "bar"
              description = "This is foo"
            }
            variable "abc" { default = null }
            variable "def" {}
            variable "ghi" {
              type = number
              default = 99
              description = "simple type w/ default"
            }
            variable "jkl" {
              type = list(string)
              default = ["hello"]
            }
            variable "mno" { type = list(number) }
            variable "pqr" {
              type = tuple([number, string, bool])
              default = [99, "99", true]
            }
            variable "stu" {
              type = map(string)
              default = {"foo": "bar"}
            }
            variable "wxy" { default = ["foo"] }
            variable "xyz" { default = {"foo": "bar"} }
            variable "yza" { default = true }
            variable "num" { default = 1.5 }
            variable "ENVD" { default = "x" }
            TOP = "attributes are not listed"
            target "default" {}
            "#,
        )],
        &[("ENVD", "from-env")],
    )
    .expect("lists");
    assert_eq!(
        listing.variables,
        [
            var("ENVD", "", Some("from-env"), ""),
            var("abc", "", None, ""),
            var("def", "", Some(""), ""),
            var("foo", "", Some("bar"), "This is foo"),
            var("ghi", "number", Some("99"), "simple type w/ default"),
            var("jkl", "list of string", Some(r#"["hello"]"#), ""),
            var("mno", "list of number", None, ""),
            var("num", "", Some("1.5"), ""),
            var("pqr", "tuple", Some(r#"[99,"99",true]"#), ""),
            var("stu", "map of string", Some(r#"{"foo":"bar"}"#), ""),
            var("wxy", "", Some(r#"["foo"]"#), ""),
            var("xyz", "", Some(r#"{"foo":"bar"}"#), ""),
            var("yza", "", Some("true"), ""),
        ]
    );
    assert!(!listing.compose_only);
}

/// Recorded from `docker buildx bake --list variables` v0.28.0: a declared `any` is
/// named as a type constraint ("any type"), objects list their attributes by name,
/// sets are sorted and de-duplicated.
#[test]
fn declared_types_are_named_as_buildx_names_constraints() {
    let listing = list(
        r#"
        variable "A" {
          type = object({b = string, a = optional(number), c = list(string)})
          default = {b = "x", a = 1, c = ["q"]}
        }
        variable "D" {
          type = any
          default = {z = 1, y = "t"}
        }
        variable "L" { type = list(any) }
        variable "S" {
          type = set(string)
          default = ["b", "a", "b"]
        }
        target "default" {}
        "#,
    );
    assert_eq!(
        listing.variables,
        [
            var("A", "object", Some(r#"{"a":1,"b":"x","c":["q"]}"#), ""),
            var(
                "D",
                "any type",
                Some(r#"{"value":{"y":"t","z":1},"type":["object",{"y":"string","z":"number"}]}"#),
                ""
            ),
            var("L", "list of any single type", None, ""),
            var("S", "set of string", Some(r#"["a","b"]"#), ""),
        ]
    );
}

#[test]
fn the_last_variable_block_gives_the_description_and_json_attributes_are_not_variables() {
    let listing = list_files(
        &[
            (
                "docker-bake.json",
                r#"{"variable": {"TAG": {"default": "1", "description": "first"}}, "PLAIN": "x",
                   "target": {"app": {"description": "From JSON"}}}"#,
            ),
            ("docker-bake.hcl", "variable \"TAG\" { default = \"2\" }\n"),
        ],
        &[],
    )
    .expect("lists");
    assert_eq!(listing.variables, [var("TAG", "", Some("2"), "")]);
    assert_eq!(listing.targets[0].description, "From JSON");
}

#[test]
fn evaluation_errors_in_any_target_surface() {
    let err = list_files(
        &[(
            "docker-bake.hcl",
            "target \"a\" {}\ntarget \"b\" { tags = [undefined_thing] }\n",
        )],
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("undefined_thing"), "{err}");
}
