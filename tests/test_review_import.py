"""Relabel lists -> decisions: items by path, folder or id; readable values; bad rows listed with
their line numbers and nothing imported; the CLI; `audit export` lists the imported decisions."""
from __future__ import annotations

import pytest

from audit.review_import import RelabelListError, import_relabel_list, parse_value, plan_relabel_list
from audit.reviews import ReviewStore
from test_app_support import write_seed_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from audit.dataset_index import index_dataset

    root = tmp_path_factory.mktemp("relabel") / "data"
    write_seed_dataset(root, people=4, eval_images=6)
    return index_dataset(root)


def _people(index):
    return index.images[index.images["split"] == "train"].drop_duplicates("person")


def test_parse_values():
    assert parse_value("gender", " Female ") == (1, None) and parse_value("gender", "m") == (0, None)
    assert parse_value("mask", "not wear") == (2, None) and parse_value("mask", "incorrect_mask") == (1, None)
    assert parse_value("mask", "0") == (0, None)
    assert parse_value("age", "31") == (1, 31) and parse_value("age", "25-39") == (1, None)
    assert parse_value("age", "≥40") == (2, None) and parse_value("age", "40+") == (2, None)
    for field, value in (("gender", "2"), ("mask", "half"), ("age", "200"), ("age", "old")):
        with pytest.raises(ValueError):
            parse_value(field, value)


def test_a_good_list_becomes_decisions_with_its_source(data, tmp_path):
    people = _people(data)
    p0, p1 = people.iloc[0], people.iloc[1]
    normal = data.images[(data.images["person"] == p0["person"]) & (data.images["mask_type"] == "normal")].iloc[0]
    ev = data.images[data.images["split"] == "eval"].iloc[0]
    other_gender = ("male", "female")[1 - int(p0["gender"])]
    text = ("item,field,value,note\n"
            f"{p0['person_id']},gender,{other_gender},\"looks {other_gender}, long hair\"\n"   # a person id
            f"{p1['path'].split('/')[-2]},age,33,\n"                                            # a folder name
            f"{normal['path']},mask,incorrect,\n"                                                # an image path
            f"{ev['path']},gender,{('male', 'female')[int(ev['gender'])]},same as given\n")      # -> keep
    store = ReviewStore(tmp_path / "r.sqlite")
    ids = import_relabel_list(store, data, text.encode("utf-8-sig"), source="fixes.csv", reviewer="team-7")
    assert len(ids) == 4
    latest = store.latest(data.fingerprint).set_index(["item", "field"])
    g = latest.loc[(p0["person"], "gender")]
    assert (g["decision"], int(g["new_value"]), g["note"]) == ("set", 1 - int(p0["gender"]),
                                                              f"looks {other_gender}, long hair")
    assert set(latest["source"]) == {"fixes.csv"} and set(latest["reviewer"]) == {"team-7"}
    a = latest.loc[(p1["person"], "age")]
    assert int(a["new_age"]) == 33 and int(a["new_value"]) == 1
    assert latest.loc[(normal["path"], "mask"), "new_value"] == 1
    assert latest.loc[(ev["path"], "gender"), "decision"] == "keep"


def test_bad_rows_are_listed_by_line_and_nothing_is_imported(data, tmp_path):
    people = _people(data)
    p0 = people.iloc[0]
    text = ("Item,Field,Value\n"
            f"{p0['person']},gender,female\n"         # line 2: fine
            "nobody_male_Asian_30,gender,male\n"      # line 3: unknown item
            f"{p0['person']},colour,red\n"             # line 4: unknown field
            f"{p0['person']},age,300\n"                # line 5: impossible value
            f"{p0['person']},mask,wear\n")             # line 6: mask of a person
    store = ReviewStore(tmp_path / "r.sqlite")
    with pytest.raises(RelabelListError) as info:
        import_relabel_list(store, data, text, source="bad.csv")
    assert [line for line, _msg in info.value.problems] == [3, 4, 5, 6]
    assert "unknown item" in info.value.problems[0][1] and "unknown field" in info.value.problems[1][1]
    assert store.history(data.fingerprint).empty  # nothing half-written
    plan = plan_relabel_list("item,value\nx,1\n", data, source="x.csv")
    assert plan.problems and "missing column" in plan.problems[0][1] and "field" in plan.problems[0][1]


def test_cli_imports_then_export_lists_them(data, tmp_path, capsys):
    from audit.cli import main
    from audit.export import read_export_csv

    p0 = _people(data).iloc[0]
    good = tmp_path / "team fixes.csv"
    good.write_text(f"item,field,value\n{p0['person']},gender,{1 - int(p0['gender'])}\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("item,field,value\nghost,gender,male\n", encoding="utf-8")
    reviews = tmp_path / "r.sqlite"
    assert main(["review", "import", str(data.root), str(bad), "--reviews", str(reviews)]) == 2
    err = capsys.readouterr().err
    assert "line 2: unknown item 'ghost'" in err and "nothing imported" in err
    assert main(["review", "import", str(data.root), str(good), "--reviewer", "ann", "--reviews", str(reviews)]) == 0
    assert "Imported 1 decisions from team fixes.csv" in capsys.readouterr().out
    out = tmp_path / "export"
    assert main(["export", str(data.root), "--reviews", str(reviews), "--out", str(out)]) == 0
    relabel = read_export_csv(out / "relabel.csv")
    assert relabel[["item", "field", "decision", "reviewer"]].values.tolist() == [[p0["person"], "gender", "set", "ann"]]
