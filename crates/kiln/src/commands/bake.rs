//! `kiln bake`: resolve the Bake files (and, for now, print them).

use anyhow::bail;

use crate::args::bake::BakeArgs;

pub(crate) fn run(args: &BakeArgs) -> anyhow::Result<()> {
    let request = kiln_bake::Request {
        files: args.files.iter().map(|f| f.display().to_string()).collect(),
        dir: std::env::current_dir()?,
        env: std::env::vars().collect(),
        sets: args.sets.clone(),
        targets: args.targets.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
    };
    let resolved = kiln_bake::resolve(&request)?;
    if args.print {
        println!("{}", serde_json::to_string_pretty(&resolved.to_json())?);
        return Ok(());
    }
    bail!("building Bake targets is not supported yet; `kiln bake --print` shows how they resolve")
}
