//! Tests of the template language, through [`render`] and [`Template`]: the seed's usage, fields,
//! control structures, trim markers, functions, errors with positions and the bounds.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

#[derive(Debug)]
struct Vars(BTreeMap<String, Json>);

impl Scope for Vars {
    fn lookup(&self, name: &str) -> Option<Val<'_>> {
        self.0.get(name).map(Val::borrowed)
    }
    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

fn vars(v: Json) -> Vars {
    Vars(
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn r(src: &str, data: Json) -> Result<String, TemplateError> {
    let v = vars(data);
    render(src, Val::Scope(&v))
}

fn ok(src: &str, data: Json) -> String {
    r(src, data).unwrap()
}

#[test]
fn seed_usage() {
    let data = json!({"input": "hello", "previous_output": 7, "validate_input": "valid"});
    assert_eq!(
        ok("Rate the quality from 1-10: {{.input}}", data.clone()),
        "Rate the quality from 1-10: hello"
    );
    assert_eq!(
        ok("The score is: {{.previous_output}}", data.clone()),
        "The score is: 7"
    );
    assert_eq!(
        ok("Validation result: {{ .validate_input }}", data),
        "Validation result: valid"
    );
}

#[test]
fn json_field_access_as_in_hook_output() {
    let hook =
        json!({"weather": "sunny", "temperature": 21.0, "wind": {"kmh": 12.5}, "tags": ["a", "b"]});
    let out = render(
        "The weather is {{.weather}} with a temperature of {{.temperature}} ({{.wind.kmh}} km/h, {{index .tags 1}}).",
        Val::borrowed(&hook),
    )
    .unwrap();
    assert_eq!(
        out,
        "The weather is sunny with a temperature of 21 (12.5 km/h, b)."
    );
    // Missing fields inside JSON are null: empty, and falsy.
    assert_eq!(
        render(
            "[{{.nope}}]{{if .nope}}yes{{else}}no{{end}}",
            Val::borrowed(&hook)
        )
        .unwrap(),
        "[]no"
    );
    assert_eq!(
        render("{{.nope | default \"n/a\"}}", Val::borrowed(&hook)).unwrap(),
        "n/a"
    );
}

#[test]
fn unknown_variable_is_an_error_naming_the_set() {
    let e = r(
        "Hi {{.inptu}}",
        json!({"input": "x", "previous_output": "y"}),
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (1, 6));
    assert!(e.message.contains("no variable \"inptu\""), "{e}");
    assert!(e.message.contains("input, previous_output"), "{e}");
}

#[test]
fn control_structures() {
    let data = json!({"items": [{"n": "a", "v": 1}, {"n": "b", "v": 2}], "m": {"z": 1, "a": 2}, "flag": false, "x": 5});
    assert_eq!(
        ok("{{range .items}}{{.n}}={{.v}};{{end}}", data.clone()),
        "a=1;b=2;"
    );
    assert_eq!(
        ok(
            "{{range $i, $e := .items}}{{$i}}:{{$e.n}} {{end}}",
            data.clone()
        ),
        "0:a 1:b "
    );
    assert_eq!(
        ok("{{range $k, $v := .m}}{{$k}}{{$v}}{{end}}", data.clone()),
        "a2z1"
    );
    assert_eq!(
        ok("{{range .none}}x{{else}}empty{{end}}", json!({"none": []})),
        "empty"
    );
    assert_eq!(
        ok(
            "{{if .flag}}a{{else if gt .x 3}}b{{else}}c{{end}}",
            data.clone()
        ),
        "b"
    );
    assert_eq!(ok("{{with .m}}{{.a}}{{end}}", data.clone()), "2");
    assert_eq!(ok("{{$y := .x}}{{$y}}{{$y = 6}}{{$y}}", data.clone()), "56");
    assert_eq!(ok("{{range 3}}{{.}}{{end}}", data), "012");
}

#[test]
fn trim_markers_and_comments() {
    let data = json!({"a": "A"});
    assert_eq!(ok("x  {{- .a -}}  y", data.clone()), "xAy");
    assert_eq!(
        ok("x {{/* a comment with }} and \" */}} y", data.clone()),
        "x  y"
    );
    assert_eq!(ok("x {{- /* c */ -}} y", data), "xy");
}

#[test]
fn functions() {
    let data = json!({"s": " Hello ", "n": 7.5, "l": ["a", "b"], "t": true});
    assert_eq!(ok("{{trim .s | lower}}", data.clone()), "hello");
    assert_eq!(
        ok("{{upper \"x\"}}{{len .l}}{{join \", \" .l}}", data.clone()),
        "X2a, b"
    );
    assert_eq!(
        ok(
            "{{printf \"%s|%.1f|%d|%q|%t|%%\" .l 2.25 3 \"q\" .t}}",
            data.clone()
        ),
        "[\"a\",\"b\"]|2.2|3|\"q\"|true|%"
    );
    assert_eq!(ok("{{print 1 2 \"a\" \"b\"}}", data.clone()), "1 2ab");
    assert_eq!(ok("{{json .l}}", data.clone()), "[\"a\",\"b\"]");
    assert_eq!(
        ok("{{and .t 0}}|{{or 0 \"\" .n}}|{{not .t}}", data.clone()),
        "0|7.5|false"
    );
    assert_eq!(
        ok(
            "{{eq .n 7.5}} {{eq 1 2 1}} {{ne \"a\" \"b\"}} {{le 2 2}}",
            data.clone()
        ),
        "true true true true"
    );
    assert_eq!(ok("{{contains \"ell\" .s}}", data.clone()), "true");
    assert_eq!(ok("{{(index .l 0) | upper}}", data.clone()), "A");
    assert!(
        r("{{lt 1 \"a\"}}", data.clone())
            .unwrap_err()
            .message
            .contains("incompatible")
    );
    assert!(
        r("{{nope 1}}", data.clone())
            .unwrap_err()
            .message
            .contains("unknown function")
    );
    assert!(
        r("{{index .l 5}}", data)
            .unwrap_err()
            .message
            .contains("out of range")
    );
}

#[test]
fn chat_history_prints_its_last_message() {
    let msgs = vec![
        json!({"role": "system", "content": "be nice"}),
        json!({"role": "user", "content": [{"type": "text", "text": "I love it"}]}),
    ];
    #[derive(Debug)]
    struct Chat<'a>(&'a [Json]);
    impl Scope for Chat<'_> {
        fn lookup(&self, name: &str) -> Option<Val<'_>> {
            (name == "input").then_some(Val::Chat(self.0))
        }
        fn names(&self) -> Vec<String> {
            vec!["input".into()]
        }
    }
    let s = Chat(&msgs);
    let out = render(
        "{{.input}}|{{len .input}}|{{range .input.messages}}{{.role}} {{end}}|{{eq .input \"I love it\"}}",
        Val::Scope(&s),
    )
    .unwrap();
    assert_eq!(out, "I love it|2|system user |true");
}

#[test]
fn parse_errors_have_positions() {
    for (src, line, col, needle) in [
        ("a {{.x", 1, 3, "unclosed action"),
        ("a\n  {{if .x}}b", 2, 3, "without a matching {{end}}"),
        ("{{end}}", 1, 1, "unexpected {{end}}"),
        ("{{.x | }}", 1, 6, "missing command"),
        ("{{\"abc}}", 1, 1, "unclosed action"),
        ("{{define \"x\"}}{{end}}", 1, 1, "not supported"),
        ("{{.x 1}}", 1, 6, "cannot take arguments"),
        ("{{}}", 1, 1, "empty action"),
        ("{{/* x }}", 1, 1, "unclosed"),
    ] {
        let e = Template::parse(src)
            .and_then(|t| {
                let v = vars(json!({"x": 1}));
                t.render(Val::Scope(&v))
            })
            .unwrap_err();
        assert!(e.message.contains(needle), "{src}: {e}");
        assert_eq!((e.line, e.column), (line, col), "{src}: {e}");
    }
}

#[test]
fn output_and_work_are_bounded() {
    let big = "x".repeat(600_000);
    let e = r("{{.b}}{{.b}}", json!({"b": big})).unwrap_err();
    assert!(e.message.contains("larger than"), "{e}");
    let e = r("{{range 1000}}{{range 1000}}{{end}}{{end}}", json!({})).unwrap_err();
    assert!(e.message.contains("evaluation steps"), "{e}");
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    let e = r(&format!("{{{{{deep}}}}}"), json!({})).unwrap_err();
    assert!(e.message.contains("nested deeper"), "{e}");
    let nested = "{{if 1}}".repeat(100) + &"{{end}}".repeat(100);
    assert!(
        r(&nested, json!({}))
            .unwrap_err()
            .message
            .contains("nested deeper")
    );
}

#[test]
fn printing_the_root_is_an_error() {
    assert!(
        r("{{.}}", json!({}))
            .unwrap_err()
            .message
            .contains("variable set")
    );
    assert_eq!(ok("{{$.a}}", json!({"a": 1})), "1");
}

#[test]
fn no_panic_on_odd_input() {
    for src in [
        "{{",
        "}}",
        "{{-",
        "{{- }}",
        "{{ -}}",
        "{{.}}}",
        "{{(}}",
        "{{)}}",
        "{{$}}",
        "{{$x}}",
        "{{:=}}",
        "{{$a, $b := 1}}",
        "{{1 | 2}}",
        "{{\"\\",
        "{{`",
        "{{'a'}}",
        "{{.a.}}",
        "{{..}}",
        "{{-1}}",
        "{{- -}}",
        "é{{.é}}ü",
        "{{range $a, $b, $c := 1}}{{end}}",
        "{{else}}",
        "{{if}}{{end}}",
        "{{printf \"%\"}}",
        "{{printf \"%z\" 1}}",
    ] {
        let _ = r(src, json!({"a": {"b": 1}}));
    }
}
