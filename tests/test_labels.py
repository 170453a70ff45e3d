import numpy as np
import pandas as pd
import pytest

from audit import labels as L

# The dataset description's table: class -> (mask, gender, age) with default bins.
EXPECTED = [
    (0, "Wear", "Male", "<25"), (1, "Wear", "Male", "25–39"), (2, "Wear", "Male", "≥40"),
    (3, "Wear", "Female", "<25"), (4, "Wear", "Female", "25–39"), (5, "Wear", "Female", "≥40"),
    (6, "Incorrect", "Male", "<25"), (7, "Incorrect", "Male", "25–39"), (8, "Incorrect", "Male", "≥40"),
    (9, "Incorrect", "Female", "<25"), (10, "Incorrect", "Female", "25–39"), (11, "Incorrect", "Female", "≥40"),
    (12, "Not wear", "Male", "<25"), (13, "Not wear", "Male", "25–39"), (14, "Not wear", "Male", "≥40"),
    (15, "Not wear", "Female", "<25"), (16, "Not wear", "Female", "25–39"), (17, "Not wear", "Female", "≥40"),
]


def test_class_table_matches_dataset_description():
    table = L.class_table()
    assert len(table) == 18
    got = list(table[["class_id", "mask", "gender", "age"]].itertuples(index=False, name=None))
    assert got == EXPECTED


def test_class_id_round_trip_scalar_and_array():
    for cid in range(18):
        assert L.class_id(*L.split_class(cid)) == cid
    ids = np.arange(18)
    m, g, a = L.split_class(ids)
    assert (L.class_id(m, g, a) == ids).all()


@pytest.mark.parametrize("bins,ages,expected", [
    (L.DEFAULT_BINS, [0, 24, 25, 39, 40, 90], [0, 0, 1, 1, 2, 2]),
    (L.COMPETITION_BINS, [29, 30, 59, 60], [0, 1, 1, 2]),
    (L.AgeBins(20, 50, "custom"), [19, 20, 49, 50], [0, 1, 1, 2]),
])
def test_age_bins(bins, ages, expected):
    assert list(bins.bin(ages)) == expected
    assert bins.bin(ages[0]) == expected[0]


def test_competition_preset_labels_and_parse():
    assert L.COMPETITION_BINS.labels == ("<30", "30–59", "≥60")
    assert L.parse_bins("competition") == L.COMPETITION_BINS
    assert L.parse_bins("20,45").edges == (20, 45)
    with pytest.raises(ValueError):
        L.parse_bins("45,20")
    with pytest.raises(ValueError):
        L.parse_bins("young,old")


def test_class_probs_from_heads_is_a_distribution_and_marginalises_back():
    rng = np.random.default_rng(0)
    heads = [rng.dirichlet(np.ones(k), size=5) for k in (3, 2, 3)]
    p = L.class_probs_from_heads(*heads)
    assert p.shape == (5, 18)
    assert np.allclose(p.sum(1), 1)
    for got, want in zip(L.head_probs_from_classes(p), heads):
        assert np.allclose(got, want)
    # class 13 = not wear, male, 25-39
    assert np.isclose(p[0, 13], heads[0][0, 2] * heads[1][0, 0] * heads[2][0, 1])


def test_one_field_description_names_every_column_a_run_holds():
    """The fields are described once (issue #12): every module's columns come from FIELD_INFO."""
    from audit import metrics, runs
    from audit.noise import given_codes, head_probs

    assert L.FIELDS == ("mask", "gender", "age") == tuple(L.FIELD_INFO)
    assert [f.n_codes for f in L.FIELD_INFO.values()] == [L.N_MASK, L.N_GENDER, L.N_AGE_BINS]
    assert L.AGE_FIELD.label_column == "age_bin" and L.AGE_FIELD.pred_column == "pred_age_bin"
    assert L.GENDER_FIELD.prob_columns == ("p_gender_0", "p_gender_1") == runs.P_GENDER
    assert runs.P_MASK == L.MASK_FIELD.prob_columns and runs.P_AGE == L.AGE_FIELD.prob_columns
    assert runs.P_CLASS == L.CLASS_PROB_COLUMNS and len(L.CLASS_PROB_COLUMNS) == 18
    for f in L.FIELD_INFO.values():
        assert metrics.HEADS[f.name] == (f.label_column, f.pred_column, f.n_codes)
        assert f.pred_column in runs.PRED_COLUMNS
    frame = pd.DataFrame({"mask": [2], "gender": [1], "age_bin": [0],
                          **{c: [v] for c, v in zip(L.AGE_FIELD.prob_columns, (0.2, 0.3, 0.5))}})
    assert given_codes(frame, "mask").tolist() == [2] and given_codes(frame, "age").tolist() == [0]
    assert head_probs(frame, "age").tolist() == [[0.2, 0.3, 0.5]]


def test_field_names_follow_the_bins_and_unknown_fields_say_which_exist():
    assert L.AGE_FIELD.value_names(L.COMPETITION_BINS) == ("<30", "30–59", "≥60")
    assert L.field_value_names("age", L.COMPETITION_BINS) == L.COMPETITION_BINS.labels
    assert L.field_value_names("mask") == L.MASK_NAMES and L.GENDER_FIELD.title == "Gender"
    with pytest.raises(ValueError, match="expected one of"):
        L.field_info("race")


def test_short_class_names():
    assert L.short_class_name(7) == "Inc·M·25–39"
    assert L.short_class_name(7, ascii_only=True) == "Inc M 25-39"
    assert L.short_class_name(17, L.COMPETITION_BINS, ascii_only=True) == "Not F 60+"
