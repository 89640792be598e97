// BERT's tokenizer as the `tokenizers` library runs it from tokenizer.json (BertNormalizer,
// BertPreTokenizer, WordPiece, then [CLS] ... [SEP] truncated to the model's max length):
// the same token ids as the Python prompt encoder (tests/web/test_tokenizer.py checks it).
"use strict";

(function (root) {
  const CONTROL = /\p{C}/u; // Cc, Cf, Cs, Co, Cn: removed (tab, newline and return excepted)
  const WHITESPACE = /[\t\n\r]|\p{White_Space}/u;
  const NONSPACING_MARK = /\p{Mn}/u;
  const PUNCTUATION = /[!-/:-@[-`{-~]|\p{P}/u; // ASCII punctuation (symbols too) and Unicode's

  function isChinese(cp) {
    return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
      (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) ||
      (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
  }

  // BertNormalizer: clean the text, space out CJK characters, strip accents, lower-case.
  function normalize(text) {
    let out = "";
    for (const c of text) {
      const cp = c.codePointAt(0);
      if (cp === 0 || cp === 0xfffd || (CONTROL.test(c) && !"\t\n\r".includes(c))) continue;
      if (WHITESPACE.test(c)) out += " ";
      else if (isChinese(cp)) out += ` ${c} `;
      else out += c;
    }
    let stripped = "";
    for (const c of out.normalize("NFD")) if (!NONSPACING_MARK.test(c)) stripped += c;
    let lower = "";
    for (const c of stripped) lower += c.toLowerCase(); // one character at a time, as Rust's to_lowercase
    return lower;
  }

  // BertPreTokenizer: split on whitespace, and every punctuation character is a word of its own.
  function preTokenize(text) {
    const words = [];
    let word = "";
    for (const c of text) {
      if (WHITESPACE.test(c) || PUNCTUATION.test(c)) {
        if (word) words.push(word);
        word = "";
        if (!WHITESPACE.test(c)) words.push(c);
      } else {
        word += c;
      }
    }
    if (word) words.push(word);
    return words;
  }

  class WordPieceTokenizer {
    // vocab: the tokens in id order (vocab.txt); maxLength: ids with [CLS] and [SEP] included
    constructor(vocab, { maxLength, unk = "[UNK]", prefix = "##", maxWordChars = 100,
      special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] } = {}) {
      this.ids = new Map(vocab.map((token, id) => [token, id]));
      this.maxLength = maxLength;
      this.unk = this.ids.get(unk);
      this.prefix = prefix;
      this.maxWordChars = maxWordChars;
      this.special = special.filter((t) => this.ids.has(t));
      this.cls = this.ids.get("[CLS]");
      this.sep = this.ids.get("[SEP]");
    }

    static fromText(text, options) {
      const vocab = text.split("\n");
      if (vocab[vocab.length - 1] === "") vocab.pop();
      return new WordPieceTokenizer(vocab, options);
    }

    // Greedy longest match first; a word with a piece that is not in the vocabulary is [UNK].
    wordPiece(word) {
      const chars = Array.from(word);
      if (chars.length > this.maxWordChars) return [this.unk];
      const pieces = [];
      for (let start = 0; start < chars.length;) {
        let end = chars.length, id;
        for (; start < end; end--) {
          const piece = (start > 0 ? this.prefix : "") + chars.slice(start, end).join("");
          id = this.ids.get(piece);
          if (id !== undefined) break;
        }
        if (id === undefined) return [this.unk];
        pieces.push(id);
        start = end;
      }
      return pieces;
    }

    // The special tokens written in the prompt stay whole; the rest goes through the pipeline.
    encode(text) {
      let ids = [];
      for (const part of this.splitSpecial(text)) {
        if (typeof part === "number") ids.push(part);
        else for (const word of preTokenize(normalize(part))) ids.push(...this.wordPiece(word));
      }
      ids = ids.slice(0, Math.max(0, this.maxLength - 2)); // truncation leaves room for [CLS], [SEP]
      return [this.cls, ...ids, this.sep];
    }

    splitSpecial(text) {
      const parts = [];
      let rest = text;
      for (;;) {
        let at = -1, token = null;
        for (const t of this.special) {
          const k = rest.indexOf(t);
          if (k >= 0 && (at < 0 || k < at)) { at = k; token = t; }
        }
        if (at < 0) break;
        if (at > 0) parts.push(rest.slice(0, at));
        parts.push(this.ids.get(token));
        rest = rest.slice(at + token.length);
      }
      if (rest) parts.push(rest);
      return parts;
    }
  }

  const api = { WordPieceTokenizer, normalize, preTokenize };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.GouacheTokenizer = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
