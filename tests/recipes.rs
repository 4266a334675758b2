//! The CI recipe (docs/ci-load-test.md), read as a file: its GitHub
//! Actions workflow parses as YAML and has the steps the recipe promises,
//! every smtp-source and smtp-sink command line in it (and in its "Try it
//! locally" block) is one the programs accept, checked by their own
//! configuration code, and the report fields its jq lines read exist in
//! docs/report.schema.json.
//!
//! Nothing here runs a load: the thresholds of the recipe are for a CI
//! runner, not for a loaded test machine.

use std::{fs, path::Path};

use yaml_rust2::{Yaml, YamlLoader};

const RECIPE: &str = "docs/ci-load-test.md";

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The contents of the fenced code blocks of `markdown` whose info string
/// is `lang`.
fn code_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, fence) if fence == format!("```{lang}") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The workflow: the one YAML block of the recipe.
fn workflow() -> Yaml {
    let blocks = code_blocks(&read(RECIPE), "yaml");
    assert_eq!(blocks.len(), 1, "{RECIPE}: one yaml block expected");
    let mut docs = YamlLoader::load_from_str(&blocks[0])
        .unwrap_or_else(|e| panic!("{RECIPE}: the workflow is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{RECIPE}: one YAML document expected");
    docs.remove(0)
}

/// Every step of every job.
fn steps(workflow: &Yaml) -> Vec<&Yaml> {
    let jobs = workflow["jobs"].as_hash().expect("jobs is a mapping");
    assert!(!jobs.is_empty(), "no jobs");
    jobs.values()
        .flat_map(|job| {
            assert!(job["runs-on"].as_str().is_some(), "a job without runs-on");
            job["steps"].as_vec().expect("steps is a list")
        })
        .collect()
}

/// The shell commands of a script, one per logical line (backslash
/// continuations joined, comments and blank lines dropped).
fn commands(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for piece in script.lines() {
        let piece = piece.trim();
        if let Some(head) = piece.strip_suffix('\\') {
            line.push_str(head.trim_end());
            line.push(' ');
            continue;
        }
        line.push_str(piece);
        let command = std::mem::take(&mut line);
        if !command.is_empty() && !command.starts_with('#') {
            out.push(command);
        }
    }
    out
}

/// The words of a simple command, as the shell splits them (single and
/// double quotes, no expansions), up to the first operator or
/// redirection (`&`, `|`, `;`, `>`, `<`, `2>`).
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '&' | '|' | ';' | '<' | '>' => break,
            '2' if !in_word && chars.peek() == Some(&'>') => break,
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The smtp-source and smtp-sink command lines of a script: argv with
/// argv[0] the program's name.
fn program_lines(script: &str) -> Vec<Vec<String>> {
    commands(script)
        .iter()
        .map(|c| words(c))
        .filter_map(|mut argv| {
            let program = argv.first()?.rsplit('/').next()?.to_owned();
            if program == "smtp-source" || program == "smtp-sink" {
                argv[0] = program;
                Some(argv)
            } else {
                None
            }
        })
        .collect()
}

/// Checks a command line with the program's own parser and checks, as
/// the program would before it starts (the sink as a non-root user, as on
/// a CI runner).
fn check(argv: &[String]) {
    match argv[0].as_str() {
        "smtp-source" => match smtp_source::Invocation::from_args(argv) {
            Ok(smtp_source::Invocation::Run(_)) => {}
            Ok(smtp_source::Invocation::Merge(_)) => panic!("{argv:?}: a merge, not a run"),
            Err(e) => panic!("{argv:?}: smtp-source refuses it: {e}"),
        },
        "smtp-sink" => {
            let cli = smtp_sink::cli::Cli::try_parse_ordered(argv)
                .unwrap_or_else(|e| panic!("{argv:?}: smtp-sink refuses it: {e}"));
            if let Err(e) = smtp_sink::Config::from_cli(cli, "smtp-sink", 1000) {
                panic!("{argv:?}: smtp-sink refuses it: {e}");
            }
        }
        other => unreachable!("{other}"),
    }
}

#[test]
fn the_workflow_parses_and_has_the_recipe_steps() {
    let workflow = workflow();
    assert!(
        workflow["name"].as_str().is_some(),
        "the workflow has no name"
    );
    assert!(!workflow["on"].is_badvalue(), "the workflow has no trigger");
    let steps = steps(&workflow);
    for step in &steps {
        assert!(
            step["run"].as_str().is_some() != step["uses"].as_str().is_some(),
            "a step needs exactly one of run and uses: {step:?}"
        );
    }
    let scripts: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    let lines: Vec<Vec<String>> = scripts.iter().flat_map(|s| program_lines(s)).collect();
    let sink = lines
        .iter()
        .find(|l| l[0] == "smtp-sink")
        .expect("no smtp-sink");
    let source = lines
        .iter()
        .find(|l| l[0] == "smtp-source")
        .expect("no smtp-source");
    // The source aims at the address the sink listens on.
    let listen = sink.iter().rev().nth(1).expect("the sink's address");
    assert_eq!(
        source.last(),
        Some(listen),
        "source and sink addresses differ"
    );
    // It writes the JSON report and has thresholds to fail on.
    let json = source
        .iter()
        .position(|w| w == "--json")
        .expect("no --json");
    assert_eq!(source[json + 1], "report.json");
    assert!(source.iter().any(|w| w == "--threshold"), "no --threshold");
    // The upload runs even when the test failed, and carries the report.
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("no upload-artifact step");
    assert_eq!(upload["if"].as_str(), Some("always()"));
    let paths = upload["with"]["path"].as_str().expect("upload paths");
    assert!(paths.lines().any(|p| p.trim() == "report.json"), "{paths}");
}

#[test]
fn every_command_line_of_the_recipe_is_accepted() {
    let recipe = read(RECIPE);
    let mut scripts: Vec<String> = steps(&workflow())
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::to_owned))
        .collect();
    scripts.extend(code_blocks(&recipe, "sh"));
    let lines: Vec<Vec<String>> = scripts.iter().flat_map(|s| program_lines(s)).collect();
    assert!(lines.len() >= 4, "{lines:?}");
    for argv in &lines {
        check(argv);
    }
}

/// The check is real: a misspelt option or threshold fails it.
#[test]
fn a_bad_command_line_is_refused() {
    let bad = [
        "smtp-source --jsn report.json 127.0.0.1:2525",
        "smtp-source --threshold 'rcpt.p99<<50ms' 127.0.0.1:2525",
        "smtp-source --threshold 'rcp.p99<50ms' 127.0.0.1:2525",
        "smtp-sink --stats 127.0.0.1:2525 1024",
        "smtp-sink 127.0.0.1:2525",
    ];
    for line in bad {
        let argv = &program_lines(line)[0];
        let refused = std::panic::catch_unwind(|| check(argv)).is_err();
        assert!(refused, "{line}: accepted");
    }
}

#[test]
fn shell_words_are_split_as_the_shell_does() {
    assert_eq!(
        words(r#"a 'b c' "d'e" f>g 2>h"#),
        ["a", "b c", "d'e", "f"].map(String::from)
    );
    assert_eq!(
        words("x --t 'p<5ms' & echo"),
        ["x", "--t", "p<5ms"].map(String::from)
    );
    assert_eq!(words("y 2>&1"), ["y"].map(String::from));
    assert_eq!(
        commands("a \\\n  b\n# c\n\nd || e\n"),
        ["a b", "d || e"].map(String::from)
    );
}

/// The report fields the workflow's jq lines read are in the report's
/// schema.
#[test]
fn the_jq_lines_read_fields_of_the_report() {
    let schema: serde_json::Value =
        serde_json::from_str(&read("docs/report.schema.json")).expect("schema is JSON");
    let top = schema["properties"].as_object().expect("properties");
    let threshold = schema["properties"]["thresholds"]["items"]["properties"]
        .as_object()
        .expect("thresholds items");
    let steps_yaml = workflow();
    let jq: Vec<String> = steps(&steps_yaml)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .flat_map(commands)
        .filter(|c| c.starts_with("jq "))
        .collect();
    assert!(!jq.is_empty(), "no jq lines");
    for line in &jq {
        let program = &words(line)[2];
        // `.name` references: of the report, and after `.thresholds[]`,
        // of a threshold.
        let (outer, inner) = program.split_once("[]").unwrap_or((program, ""));
        for (text, fields) in [(outer, top), (inner, threshold)] {
            for name in field_names(text) {
                assert!(fields.contains_key(&name), "{line}: no field {name}");
            }
        }
    }
}

/// The `.name`s of a jq program (a name after a dot, not in a string
/// literal's text outside `\(...)`).
fn field_names(jq: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = jq.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        let after_word = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if *b == b'.' && !after_word {
            let name: String = jq[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}
