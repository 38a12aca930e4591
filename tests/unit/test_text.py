import numpy as np
import pytest

from textcnn.config import TokenizerConfig
from textcnn.core.text import PAD_ID, UNK_ID, Tokenizer, VocabBuilder, cjk_share, split, trim
from textcnn.training.presets import split_mode

pytestmark = pytest.mark.unit


def build(texts, **kw):
    b = VocabBuilder(TokenizerConfig(**{"max_length": 16, "split": "words", **kw}))
    b.update(texts)
    return b.build()


def test_english_is_lowercased_words_and_punctuation():
    assert split("A Three-hour cinema master class!") == ["a", "three", "-", "hour", "cinema", "master",
                                                          "class", "!"]


def test_chinese_splits_into_characters_and_keeps_latin_words():
    assert split("恒生AH溢指收平 A股") == ["恒", "生", "ah", "溢", "指", "收", "平", "a", "股"]


def test_chars_split_reads_latin_words_and_numbers_by_character_and_keeps_one_space_per_run():
    assert split(" 恒生AH溢指 \u3000 2008年\tA股 ", mode="chars") == list("恒生ah溢指 2008年 a股")
    assert split("Ab  c", lowercase=False, mode="chars") == ["A", "b", " ", "c"]
    assert split(None, mode="chars") == [] and split("   ", mode="chars") == []
    tok = build(["恒生 AH股"], split="chars", max_length=8)
    assert [tok.tokens[i] for i in tok.encode(["恒 a"])[0][:3]] == ["恒", " ", "a"]


def test_a_cjk_corpus_gets_the_chars_split_unless_one_is_given():
    assert cjk_share(["酒店很好 ok", "差"]) == pytest.approx(5 / 6)
    assert cjk_share(["a fine film", "ok"]) == 0.0 and cjk_share([]) == 0.0
    auto = TokenizerConfig()
    assert split_mode(auto, 0.9).split == "chars" and split_mode(auto, 0.1).split == "words"
    assert split_mode(TokenizerConfig(split="words"), 0.9).split == "words"


def test_an_unresolved_split_is_refused_and_old_vocabularies_split_words():
    with pytest.raises(ValueError, match="split resolved"):
        VocabBuilder(TokenizerConfig(max_length=8))
    with pytest.raises(ValueError, match="split resolved"):
        Tokenizer(["<pad>", "<unk>", "a"], TokenizerConfig(max_length=8))
    with pytest.raises(ValueError, match="counted split as 'words'"):
        VocabBuilder(TokenizerConfig(split="words")).build(TokenizerConfig(max_length=8, split="chars"))
    saved = build(["ab cd"], max_length=4).to_dict()
    del saved["config"]["split"]                       # as written before the split mode existed
    assert Tokenizer.from_dict(saved).encode(["ab cd"])[0].tolist() == [2, 3, 0, 0]


def test_ideographic_and_other_unicode_spaces_separate_tokens():
    assert split("利比亚首都再遭空袭\u3000媒体称") == list("利比亚首都再遭空袭媒体称")
    assert split("ok\u00a0go\u2003now") == ["ok", "go", "now"]


def test_empty_none_and_non_strings_give_no_tokens():
    assert split("") == [] and split(None) == [] and split(3.5) == []
    tok = build(["some words here"], max_length=8)
    ids = tok.encode(["", None])
    assert ids.shape == (2, 8) and (ids == PAD_ID).all()


def test_very_long_text_is_truncated_to_max_length():
    tok = build(["word"], max_length=32)
    ids = tok.encode(["word " * 100_000])
    assert ids.shape == (1, 32) and (ids == tok.tokens.index("word")).all()


def test_unknown_words_map_to_unk_and_pad_is_on_the_right():
    tok = build(["the film", "the cast"], max_length=5)
    ids = tok.encode(["the zebra film"])[0]
    assert list(ids) == [tok.tokens.index("the"), UNK_ID, tok.tokens.index("film"), PAD_ID, PAD_ID]


def test_min_count_and_max_vocab_bound_the_vocabulary():
    texts = ["a a a b b c"]
    assert build(texts, min_count=2).tokens == ["<pad>", "<unk>", "a", "b"]
    assert build(texts, max_vocab=3).tokens == ["<pad>", "<unk>", "a"]


def test_chinese_vocabulary_encodes_characters():
    tok = build(["酒店很好", "酒店很差"], max_length=6)
    ids = tok.encode(["酒店好"])[0]
    assert [tok.tokens[i] for i in ids[:3]] == ["酒", "店", "好"] and ids[3] == PAD_ID


def test_round_trip_and_hash():
    tok = build(["one two three"])
    again = Tokenizer.from_dict(tok.to_dict())
    assert again.tokens == tok.tokens and again.hash() == tok.hash()
    assert build(["one two four"]).hash() != tok.hash()
    assert build(["one two three"], max_length=10).hash() != tok.hash()
    assert build(["one two three"], split="chars").hash() != tok.hash()


def test_trim_keeps_longest_row_and_min_width():
    ids = np.array([[5, 6, 0, 0, 0, 0], [7, 0, 0, 0, 0, 0]])
    assert trim(ids, 1).shape == (2, 2)
    assert trim(ids, 3).shape == (2, 3)
    assert trim(np.zeros((2, 6), dtype=np.int32), 4).shape == (2, 4)
