//! The man page and the bash completions of `harness`, both generated from `USAGE` (the text of
//! `harness --help`) so the three never disagree; `make install` writes them.

use super::USAGE;

/// Escapes one line of text for roff: backslashes, and a leading `.` or `'` that roff would
/// read as a request.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// `harness.1`: NAME from the first sentence of the help, SYNOPSIS from its usage lines, and
/// every paragraph after them verbatim, each under a heading.
pub fn man_page() -> String {
    let mut page = String::new();
    page.push_str(&format!(
        ".TH HARNESS 1 \"\" \"harness {}\" \"User Commands\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    let mut paragraphs = USAGE.split("\n\n");
    let name = paragraphs.next().unwrap_or("").replace('\n', " ");
    let summary = name.strip_prefix("harness: ").unwrap_or(&name);
    page.push_str(&format!(".SH NAME\nharness \\- {}\n", roff_line(summary)));
    for paragraph in paragraphs {
        let (heading, body) = match paragraph.strip_prefix("Usage:\n") {
            Some(body) => ("SYNOPSIS".to_string(), body),
            None => {
                // "harness node: run one member..." is headed HARNESS NODE; others DESCRIPTION.
                let first = paragraph.lines().next().unwrap_or("");
                let heading = match first.split_once(':') {
                    Some((name, _)) if name.starts_with("harness ") && name.split(' ').count() == 2 => {
                        name.to_uppercase()
                    }
                    _ => "DESCRIPTION".to_string(),
                };
                (heading, paragraph)
            }
        };
        page.push_str(&format!(".SH \"{}\"\n.nf\n", roff_line(&heading)));
        for line in body.lines() {
            page.push_str(&roff_line(line));
            page.push('\n');
        }
        page.push_str(".fi\n");
    }
    page
}

/// The commands of the usage lines (`harness WORD ...`), in order, once each.
fn commands() -> Vec<&'static str> {
    let mut commands = Vec::new();
    for line in USAGE.lines() {
        let mut words = line.split_whitespace().peekable();
        while let Some(word) = words.next() {
            if word == "harness" {
                if let Some(command) = words.peek() {
                    let command = command.trim_end_matches(':');
                    if command.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                        && !command.is_empty()
                        && !commands.contains(&command)
                    {
                        commands.push(command);
                    }
                }
            }
        }
    }
    commands
}

/// Every `--flag` in `text`, once each.
fn flags_in(text: &str) -> Vec<&str> {
    let mut flags = Vec::new();
    for (at, _) in text.match_indices("--") {
        let rest = &text[at..];
        let end =
            rest[2..].find(|c: char| !(c.is_ascii_lowercase() || c == '-')).map_or(rest.len(), |e| e + 2);
        let flag = rest[..end].trim_end_matches('-');
        if flag.len() > 2 && !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    flags
}

/// A bash completion script for `harness`: the commands, then the flags of the help paragraph
/// and usage lines of the command being completed.
pub fn bash_completion() -> String {
    let node_start = USAGE.find("harness node: run one member").unwrap_or(0);
    let node_end = USAGE[node_start..].find("\n\n").map_or(USAGE.len(), |e| node_start + e);
    let client_start = USAGE.find("Client commands (").unwrap_or(0);
    let client_end = USAGE[client_start..].find("\n\n").map_or(USAGE.len(), |e| client_start + e);
    let client_flags = flags_in(&USAGE[client_start..client_end]);
    let mut cases = String::new();
    for command in commands() {
        let mut flags: Vec<&str> = Vec::new();
        let mut add = |more: Vec<&'static str>| {
            for flag in more {
                if !flags.contains(&flag) {
                    flags.push(flag);
                }
            }
        };
        // The usage lines of this command, and its own paragraph or the client commands'.
        for line in USAGE.lines().filter(|l| l.contains(&format!("harness {command} "))) {
            add(flags_in(line));
        }
        match command {
            "node" => add(flags_in(&USAGE[node_start..node_end])),
            "demo" | "keygen" | "man" | "completions" | "version" | "help" => {}
            _ => add(client_flags.clone()),
        }
        flags.retain(|f| *f != "--help" && *f != "--version");
        cases.push_str(&format!("        {command}) flags=\"{}\" ;;\n", flags.join(" ")));
    }
    format!(
        "# bash completion for harness {version}, generated from `harness --help` (harness completions bash)\n\
         _harness() {{\n\
         \x20   local cur=\"${{COMP_WORDS[COMP_CWORD]}}\" flags\n\
         \x20   if [ \"$COMP_CWORD\" -eq 1 ]; then\n\
         \x20       COMPREPLY=($(compgen -W \"{commands} --help --version\" -- \"$cur\"))\n\
         \x20       return\n\
         \x20   fi\n\
         \x20   case \"${{COMP_WORDS[1]}}\" in\n\
         {cases}\
         \x20       *) flags=\"\" ;;\n\
         \x20   esac\n\
         \x20   if [[ \"$cur\" == -* ]]; then\n\
         \x20       COMPREPLY=($(compgen -W \"$flags --help\" -- \"$cur\"))\n\
         \x20   else\n\
         \x20       COMPREPLY=($(compgen -f -- \"$cur\"))\n\
         \x20   fi\n\
         }}\n\
         complete -F _harness harness\n",
        version = env!("CARGO_PKG_VERSION"),
        commands = commands().join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_carries_every_line_of_the_help() {
        let page = man_page();
        assert!(page.starts_with(".TH HARNESS 1"));
        assert!(page.contains(".SH NAME\nharness \\- a fault\\-tolerant control plane"), "{page}");
        assert!(page.contains(".SH \"SYNOPSIS\""));
        assert!(page.contains(".SH \"HARNESS NODE\""), "{page}");
        for line in USAGE.lines().skip(2).filter(|l| !l.is_empty() && *l != "Usage:") {
            assert!(page.contains(&roff_line(line)), "missing {line:?}");
        }
        assert!(!page.lines().any(|l| l.starts_with('.')
            && !l.starts_with(".TH")
            && !l.starts_with(".S")
            && l != ".nf"
            && l != ".fi"));
    }

    #[test]
    fn completion_knows_every_command_and_the_node_flags() {
        let script = bash_completion();
        for command in ["node", "put", "get", "status", "metrics", "keygen", "demo", "force-primary", "man"] {
            assert!(commands().contains(&command), "{command} in {:?}", commands());
        }
        let node = script.lines().find(|l| l.trim_start().starts_with("node)")).unwrap();
        for flag in super::super::args::NODE_VALUED.iter().chain(&super::super::args::NODE_SWITCHES) {
            assert!(
                node.contains(&format!("--{flag} ")) || node.contains(&format!("--{flag}\"")),
                "--{flag}: {node}"
            );
        }
        let put = script.lines().find(|l| l.trim_start().starts_with("put)")).unwrap();
        assert!(put.contains("--cluster") && put.contains("--file") && !put.contains("--hostfile"), "{put}");
    }
}
