import pytest

from audit.name_parsing import (
    EvalName, PersonName, is_hidden, is_image_name, normalise_race, parse_eval_file, parse_person,
    parse_train_file, source_from_dataset, source_from_id, split_ext,
)


@pytest.mark.parametrize("name, expected", [
    ("100k-000038_female_White_18", PersonName("100k-000038", 1, "White", 18)),
    ("ffhq-13643_female_LatinoHispanic_37", PersonName("ffhq-13643", 1, "LatinoHispanic", 37)),
    ("000001_male_Asian_45", PersonName("000001", 0, "Asian", 45)),
    ("003397-1_female_Asian_20", PersonName("003397-1", 1, "Asian", 20)),   # -1 suffix
    ("ffhq-00001-1_male_Black_60", PersonName("ffhq-00001-1", 0, "Black", 60)),
    ("000002_Female_Asian_52", PersonName("000002", 1, "Asian", 52)),      # gender in any case
    ("000003_male_Latino Hispanic_33", PersonName("000003", 0, "LatinoHispanic", 33)),  # space in race
    ("000004_male_Middle_Eastern_29", PersonName("000004", 0, "MiddleEastern", 29)),    # underscore in race
    ("000005_female_middle eastern_29", PersonName("000005", 1, "MiddleEastern", 29)),
    ("000006_female_Pacific_Islander_40", PersonName("000006", 1, "Pacific_Islander", 40)),  # unknown race kept
])
def test_parse_person(name, expected):
    assert parse_person(name) == expected


@pytest.mark.parametrize("name, reason", [
    ("000001_female_45", "part"),             # no race
    ("000001_f_Asian_45", "gender"),
    ("000001_female_Asian_4x", "age"),
    ("000001_female_Asian_", "age"),
    ("000001_female__45", "race"),
    ("0001 2_female_Asian_45", "id"),
    ("_female_Asian_45", "id"),
    ("somefolder", "part"),
])
def test_parse_person_rejects_with_reason(name, reason):
    with pytest.raises(ValueError, match=reason):
        parse_person(name)


@pytest.mark.parametrize("name, expected", [
    ("mask1.jpg", ("mask1", "jpg")),
    ("mask5.png", ("mask5", "png")),
    ("incorrect_mask.jpeg", ("incorrect_mask", "jpeg")),
    ("normal.JPG", ("normal", "jpg")),
    ("normal.Png", ("normal", "png")),
    ("Normal.JPEG", ("normal", "jpeg")),
    ("mask.jpg", ("mask", "jpg")),   # read; the index flags it as outside the 7 slots
])
def test_parse_train_file(name, expected):
    assert parse_train_file(name) == expected


@pytest.mark.parametrize("name", ["mask6.jpg", "masks.jpg", "normal.gif", "normal", "normal2.png", "incorrect.png"])
def test_parse_train_file_rejects(name):
    with pytest.raises(ValueError):
        parse_train_file(name)


@pytest.mark.parametrize("name, pid, gender, race, age, mask_type, ext", [
    ("ffhq-13643_female_LatinoHispanic_37_normal.png", "ffhq-13643", 1, "LatinoHispanic", 37, "normal", "png"),
    ("100k-000038_female_White_18_mask.jpg", "100k-000038", 1, "White", 18, "mask", "jpg"),
    ("ffhq-24905_female_Asian_30_incorrect_mask.png", "ffhq-24905", 1, "Asian", 30, "incorrect_mask", "png"),
    ("000001-1_male_Asian_45_mask3.JPEG", "000001-1", 0, "Asian", 45, "mask3", "jpeg"),
    ("ffhq-1_male_Middle_Eastern_30_incorrect_mask.PNG", "ffhq-1", 0, "MiddleEastern", 30, "incorrect_mask", "png"),
    ("ffhq-2_female_Latino Hispanic_12_Normal.jpg", "ffhq-2", 1, "LatinoHispanic", 12, "normal", "jpg"),
])
def test_parse_eval_file(name, pid, gender, race, age, mask_type, ext):
    got = parse_eval_file(name)
    assert isinstance(got, EvalName)
    assert got.person == PersonName(pid, gender, race, age)
    assert (got.mask_type, got.ext) == (mask_type, ext)
    assert got.key == name.rsplit(".", 1)[0][: -len(mask_type) - 1]


@pytest.mark.parametrize("name", [
    "cbc5c6e168e63498590db46022617123f1fe1268.jpg",   # the original competition's hash names
    "ffhq-1_male_Asian_30.png",                        # no mask type
    "ffhq-1_male_Asian_30_mask6.png",
    "ffhq-1_male_Asian_30_normal.bmp",
    "ffhq-1_x_Asian_30_normal.png",
])
def test_parse_eval_file_rejects(name):
    with pytest.raises(ValueError):
        parse_eval_file(name)


def test_hidden_and_image_names():
    assert is_hidden("._normal.jpg") and is_hidden(".DS_Store") and is_hidden(".ipynb_checkpoints")
    assert is_hidden("__MACOSX")
    assert not is_hidden("normal.jpg")
    assert is_image_name("a.JPG") and is_image_name("a.jpeg") and is_image_name("a.PnG")
    assert not is_image_name("notes.txt") and not is_image_name("Thumbs.db") and not is_image_name("jpg")
    assert split_ext("x.tar.GZ") == ("x.tar", "gz") and split_ext("noext") == ("noext", "")


def test_normalise_race():
    assert normalise_race("Latino_Hispanic") == "LatinoHispanic"
    assert normalise_race(" white ") == "White"
    assert normalise_race("Martian") == "Martian"


def test_sources():
    assert source_from_id("100k-000038") == "GAN"
    assert source_from_id("ffhq-13643") == "photo"
    assert source_from_id("000001") == "unknown"
    assert source_from_dataset("100k Faces Dataset") == "GAN"
    assert source_from_dataset("Flickr-Faces-HQ Dataset") == "photo"
    assert source_from_dataset("") == ""
