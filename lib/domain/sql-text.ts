/**
 * Just enough of SQL's lexical rules to read what pg_dump and pg_dumpall write: statements split
 * at semicolons outside quotes, comments and psql meta-commands dropped, and each statement as
 * tokens. Quoted identifiers, string literals (also E'' and dollar-quoted ones) stay whole, so a
 * role named "a;b" or a comment holding "TO" is never taken for syntax.
 */

export type SqlToken =
  | { readonly kind: 'word'; readonly text: string }
  | { readonly kind: 'ident'; readonly text: string }
  | { readonly kind: 'string'; readonly text: string }
  | { readonly kind: 'punct'; readonly text: string };

const WORD_START = /[A-Za-z_\u0080-\uffff]/;
const WORD_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/** The end (exclusive) of a quoted run starting at `i` (the opening quote), `'` or `"`, doubled to escape. */
function quotedEnd(text: string, i: number, quote: string, backslashes: boolean): number {
  let j = i + 1;
  while (j < text.length) {
    const ch = text[j];
    if (backslashes && ch === '\\') {
      j += 2;
      continue;
    }
    if (ch === quote) {
      if (text[j + 1] === quote) {
        j += 2;
        continue;
      }
      return j + 1;
    }
    j += 1;
  }
  return text.length;
}

/** The end of a dollar-quoted string starting at `i`, or undefined when `$` does not open one. */
function dollarEnd(text: string, i: number): number | undefined {
  const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i, i + 70));
  if (!m) return undefined;
  const close = text.indexOf(m[0], i + m[0].length);
  return close < 0 ? text.length : close + m[0].length;
}

/** Whether an `E'` starts at `i`: an E not part of a longer word. */
function escapeStringAt(text: string, i: number): boolean {
  return (text[i] === 'E' || text[i] === 'e') && text[i + 1] === "'" && !WORD_PART.test(text[i - 1] ?? ' ');
}

/**
 * The statements of a script, each trimmed and without its semicolon. `--` and `/* *\/` comments
 * and psql meta-commands (a backslash at the start of a line, such as pg_dumpall's `\restrict`)
 * are left out.
 */
export function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let current = '';
  let i = 0;
  let lineStart = true;
  while (i < text.length) {
    const ch = text[i] as string;
    if (lineStart && current.trim() === '' && ch === '\\') {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? text.length : eol + 1;
      continue;
    }
    lineStart = ch === '\n';
    if (ch === '-' && text[i + 1] === '-') {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? text.length : eol;
      continue;
    }
    if (ch === '/' && text[i + 1] === '*') {
      const close = text.indexOf('*/', i + 2);
      i = close < 0 ? text.length : close + 2;
      current += ' ';
      continue;
    }
    if (ch === "'" || ch === '"' || escapeStringAt(text, i)) {
      const start = i;
      const escaped = ch !== "'" && ch !== '"';
      const end = quotedEnd(text, escaped ? i + 1 : i, escaped ? "'" : ch, escaped);
      current += text.slice(start, end);
      i = end;
      continue;
    }
    if (ch === '$' && !WORD_PART.test(text[i - 1] ?? ' ')) {
      const end = dollarEnd(text, i);
      if (end !== undefined) {
        current += text.slice(i, end);
        i = end;
        continue;
      }
    }
    if (ch === ';') {
      if (current.trim()) statements.push(current.trim());
      current = '';
      i += 1;
      continue;
    }
    current += ch;
    i += 1;
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}

/** The tokens of one statement: words (keywords and bare names), quoted names, strings, punctuation. */
export function tokenize(statement: string): SqlToken[] {
  const tokens: SqlToken[] = [];
  let i = 0;
  while (i < statement.length) {
    const ch = statement[i] as string;
    if (/\s/.test(ch)) {
      i += 1;
    } else if (ch === '"') {
      const end = quotedEnd(statement, i, '"', false);
      tokens.push({ kind: 'ident', text: statement.slice(i + 1, end - 1).replace(/""/g, '"') });
      i = end;
    } else if (ch === "'" || escapeStringAt(statement, i)) {
      const escaped = ch !== "'";
      const open = escaped ? i + 1 : i;
      const end = quotedEnd(statement, open, "'", escaped);
      tokens.push({ kind: 'string', text: statement.slice(open + 1, end - 1) });
      i = end;
    } else if (ch === '$' && dollarEnd(statement, i) !== undefined) {
      const end = dollarEnd(statement, i) as number;
      tokens.push({ kind: 'string', text: statement.slice(i, end) });
      i = end;
    } else if (WORD_START.test(ch)) {
      let j = i + 1;
      while (j < statement.length && WORD_PART.test(statement[j] as string)) j += 1;
      tokens.push({ kind: 'word', text: statement.slice(i, j) });
      i = j;
    } else {
      tokens.push({ kind: 'punct', text: ch });
      i += 1;
    }
  }
  return tokens;
}

/** Whether a token is the keyword `word` (bare, any case). */
export function isKeyword(token: SqlToken | undefined, word: string): boolean {
  return token?.kind === 'word' && token.text.toLowerCase() === word.toLowerCase();
}

/** The name a token stands for: a quoted name as written, a bare one folded to lower case. */
export function nameOf(token: SqlToken | undefined): string | undefined {
  if (token?.kind === 'ident') return token.text;
  if (token?.kind === 'word') return token.text.toLowerCase();
  return undefined;
}

/** A role or object name as SQL: quoted, so any name reads back as itself. */
export function quoteName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
