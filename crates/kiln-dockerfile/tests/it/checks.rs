//! Build checks with BuildKit's rule names and messages, and `# check=` honoured.

use kiln_dockerfile::convert::{self, ConvertOptions};

use crate::llb_convert::FixedResolver;

/// `rule: message (line N)` for every warning of a conversion.
fn warnings(dockerfile: &str) -> Vec<String> {
    let options = ConvertOptions {
        build_args: [("TAG".to_owned(), "3.20".to_owned())].into(),
        ..ConvertOptions::default()
    };
    let conversion = convert::convert(dockerfile.as_bytes(), &options, &FixedResolver).unwrap();
    conversion
        .warnings
        .iter()
        .map(|w| format!("{}: {} (line {})", w.rule, w.message, w.location.start.line))
        .collect()
}

#[test]
fn undefined_and_secret_variables() {
    let found = warnings(
        "FROM alpine\nARG VERSION=1\nENV API_TOKEN=x PUBLIC_KEY=y\nCOPY app-$VERSON /app\nWORKDIR /$HOME_DIR\nRUN echo $NOT_CHECKED\n",
    );
    assert_eq!(
        found,
        [
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"API_TOKEN\") (line 3)",
            "UndefinedVar: Usage of undefined variable '$VERSON' (did you mean $VERSION?) (line 4)",
            "UndefinedVar: Usage of undefined variable '$HOME_DIR' (line 5)",
        ]
    );
}

#[test]
fn from_arguments_and_platforms() {
    let found = warnings(
        "ARG TAG\nFROM alpine$TAGG AS one\nFROM --platform=$TARGETPLATFORM alpine AS two\n\
         FROM --platform=linux/arm64 alpine AS three\nFROM --platform=linux/arm64 alpine AS build-arm64\n\
         FROM alpine:$TAG\n",
    );
    assert_eq!(
        found,
        [
            "InvalidDefaultArgInFrom: Default value for ARG alpine:$TAG results in empty or invalid base image name (line 6)",
            "UndefinedArgInFrom: FROM argument 'TAGG' is not declared (did you mean TAG?) (line 2)",
            "RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior (line 3)",
            "FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/arm64\" (line 4)",
        ]
    );
}

#[test]
fn the_check_directive_skips_rules() {
    let found = warnings(
        "# check=skip=UndefinedVar,SecretsUsedInArgOrEnv\nFROM alpine\nENV DB_PASSWORD=x\nLABEL a=$NOPE\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn build_args_no_arg_declares_are_reported() {
    let options = ConvertOptions {
        build_args: [
            ("TAG".to_owned(), "1".to_owned()),
            ("UNUSED".to_owned(), "x".to_owned()),
            ("HTTP_PROXY".to_owned(), "http://proxy".to_owned()),
            ("BUILDKIT_INLINE_CACHE".to_owned(), "1".to_owned()),
        ]
        .into(),
        ..ConvertOptions::default()
    };
    let conversion =
        convert::convert(b"ARG TAG\nFROM alpine:$TAG\n", &options, &FixedResolver).unwrap();
    assert_eq!(conversion.unused_build_args, ["UNUSED"]);
}

/// The `BUILDKIT_DOCKERFILE_CHECK` build arg replaces the directive; a violation of
/// `error=true` can be kept with the conversion, its warnings with it.
#[test]
fn the_check_build_arg_replaces_the_directive() {
    let dockerfile = b"# check=skip=all\nFROM alpine as base\ncopy a /\n";
    let options = ConvertOptions {
        build_args: [(
            "BUILDKIT_DOCKERFILE_CHECK".to_owned(),
            "skip=ConsistentInstructionCasing;error=true".to_owned(),
        )]
        .into(),
        keep_lint_violation: true,
        ..ConvertOptions::default()
    };
    let conversion = convert::convert(dockerfile, &options, &FixedResolver).unwrap();
    let rules: Vec<&str> = conversion
        .warnings
        .iter()
        .map(|w| w.rule.as_str())
        .collect();
    assert_eq!(rules, ["FromAsCasing"]);
    assert_eq!(
        conversion.lint_violation.unwrap().message,
        "lint violation found for rules: FromAsCasing"
    );
    let failed = convert::convert(
        dockerfile,
        &ConvertOptions {
            keep_lint_violation: false,
            ..options
        },
        &FixedResolver,
    );
    assert!(failed.is_err());
}

/// An empty `FROM --platform` names the global ARG a misspelt one may mean.
#[test]
fn an_empty_platform_suggests_a_global_arg() {
    let failed = convert::convert(
        b"FROM --platform=$BULIDPLATFORM scratch\n",
        &ConvertOptions::default(),
        &FixedResolver,
    )
    .unwrap_err();
    assert_eq!(
        failed.message,
        "empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)"
    );
    // The checks that fired before it come with the error.
    let rules: Vec<&str> = failed.warnings.iter().map(|w| w.rule.as_str()).collect();
    assert_eq!(rules, ["UndefinedArgInFrom"]);
}
