"""`immunofeed tag`: the JSON Lines contract, run through the real console script."""

import json

from tests.conftest import run_cli


def test_one_output_line_per_input_line_in_order():
    lines = [
        {"id": "a", "text": "Nivolumab plus ipilimumab in MSI-H colorectal cancer."},
        {"id": 7, "text": "No entities here at all."},
        {"id": "c", "text": "CAR-T cells targeting BCMA in multiple myeloma."},
    ]
    stdin = "".join(json.dumps(x) + "\n" for x in lines) + "\n"  # a blank line is skipped
    result = run_cli("tag", input=stdin)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a", 7, "c"]
    for record, source in zip(out, lines, strict=True):
        assert set(record) == {"id", "entities", "summary"}
        for e in record["entities"]:
            keys = {"start", "end", "text", "label", "concept", "name", "xrefs"}
            assert keys <= set(e) <= keys | {"also", "attributes"}
            assert source["text"][e["start"]:e["end"]] == e["text"]
            assert e["label"] in {"THERAPY", "CANCER", "TARGET"}
    assert [e["concept"] for e in out[0]["entities"]] == [
        "nivolumab", "ipilimumab", "msi-h", "colorectal-cancer"]
    assert out[0]["entities"][3]["xrefs"] == {"mesh": "D015179"}
    assert out[0]["entities"][3]["attributes"] == {"status": {"msi": "high"}}
    assert "attributes" not in out[2]["entities"][2]  # multiple myeloma: nothing said of it
    assert out[1]["entities"] == []
    assert out[2]["summary"] == lines[2]["text"]


def test_non_ascii_offsets_are_python_character_offsets():
    text = "Résumé: ¿inmunoterapia en el cáncer de pulmón? Sí."
    result = run_cli("tag", input=json.dumps({"id": 1, "text": text}) + "\n")
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    for e in record["entities"]:
        assert text[e["start"]:e["end"]] == e["text"]
    assert {e["concept"] for e in record["entities"]} == {"immunotherapy", "lung-cancer"}


def test_bad_line_is_one_clear_error_after_earlier_lines_are_answered():
    stdin = json.dumps({"id": 1, "text": "melanoma"}) + "\n{not json\n" + json.dumps(
        {"id": 3, "text": "glioma"}) + "\n"
    result = run_cli("tag", input=stdin)
    assert result.returncode != 0
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == [1]
    assert result.stderr.strip().splitlines() == ["Error: stdin line 2: not valid JSON "
                                                  "(Expecting property name enclosed in double "
                                                  "quotes)"]
    assert "Traceback" not in result.stderr


def test_missing_fields_are_named():
    for record, reason in [({"text": "x"}, 'missing "id"'),
                           ({"id": 1, "text": 5}, '"text" must be a string'),
                           ([1, 2], "expected an object")]:
        result = run_cli("tag", input=json.dumps(record) + "\n")
        assert result.returncode != 0
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _abstract_lines(count):
    texts = [
        "Pembrolizumab in metastatic triple-negative breast cancer (TNBC): a phase 3 trial. "
        "TNBC patients responded in 40% of cases.",
        "CAR-T cells targeting BCMA in relapsed multiple myeloma.",
        "No concept is named here.",
        "INTRODUCCIÓN: Inmunoterapia.\n\nRESULTADOS: Respuesta del 30% en el cáncer de mama."
        "\n\nCONCLUSIONES: Eficaz.",
    ]
    return [{"id": i, "text": f"{texts[i % len(texts)]} Item {i}."} for i in range(count)]


def test_several_processes_answer_exactly_as_one():
    stdin = "".join(json.dumps(x) + "\n" for x in _abstract_lines(500))
    one = run_cli("tag", "--jobs", "1", input=stdin)
    two = run_cli("tag", "--jobs", "2", input=stdin)
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    assert [json.loads(x)["id"] for x in two.stdout.splitlines()] == list(range(500))
    assert two.stdout == one.stdout


def test_bad_line_with_several_processes_answers_every_earlier_line():
    good = "".join(json.dumps(x) + "\n" for x in _abstract_lines(300))
    result = run_cli("tag", "--jobs", "2", input=good + '{"id": 300}\n' + good)
    assert result.returncode == 1
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == list(range(300))
    assert result.stderr.strip() == 'Error: stdin line 301: "text" must be a string'


def test_jobs_must_be_positive():
    result = run_cli("tag", "--jobs", "0", input="")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--jobs" in result.stderr


def test_bytes_that_are_not_utf8_stop_the_run_after_the_lines_before_them():
    import subprocess

    from tests.conftest import IMMUNOFEED

    good = "".join(json.dumps(x) + "\n" for x in _abstract_lines(100)).encode()
    result = subprocess.run([IMMUNOFEED, "tag", "--jobs", "2"], input=good + b"\xff\xfe\n",
                            capture_output=True, timeout=180)
    assert result.returncode == 1
    assert len(result.stdout.decode().splitlines()) == 100
    assert result.stderr.decode().strip() == "Error: stdin line 101: not UTF-8 text"


def test_a_text_the_tagger_fails_on_is_named_after_the_lines_before_it(monkeypatch):
    """A fault of the tagger's own on one text (no real text is known to cause one: the tagger
    is made to fail here) ends the run like a bad line: the lines before it answered, in order,
    on one core and on two, and the failing line named with what failed, on one line."""
    import io

    import pytest

    import nlp.stream
    from nlp.stream import TagInputError, tag_lines

    real = nlp.stream.annotate_many

    def failing_on_boom(texts):
        texts = list(texts)
        if any("BOOM" in text for text in texts):
            raise IndexError("no such group\nsecond line")
        return real(texts)

    monkeypatch.setattr(nlp.stream, "annotate_many", failing_on_boom)
    texts = [f"Melanoma report {i}." for i in range(150)]
    texts[130] = "BOOM in glioma"
    stdin = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    for jobs in (1, 2):
        out = io.StringIO()
        with pytest.raises(TagInputError) as raised:
            tag_lines(stdin.splitlines(keepends=True), out, jobs)
        assert raised.value.line_number == 131
        assert str(raised.value) == ("line 131: the tagger failed on this text (IndexError: "
                                     "no such group); please report it")
        answered = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [a["id"] for a in answered] == list(range(130))
        assert answered[129]["entities"][0]["concept"] == "melanoma"
