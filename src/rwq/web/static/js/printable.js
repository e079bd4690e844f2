// Text shown as it holds: the rule of rwq.printable (the terminal's and the plugin panels'),
// for every text this UI puts on a page. Control, bidi and hidden characters become visible
// escapes such as \x1b or \u202e; with `multiline` line feeds and tabs stay and carriage
// returns are dropped. A test holds INVISIBLE equal to rwq.printable's ranges.

export const INVISIBLE = [
  [0x00AD, 0x00AD], [0x034F, 0x034F], [0x0600, 0x0605], [0x061C, 0x061C], [0x06DD, 0x06DD], [0x070F, 0x070F], [0x0890, 0x0891], [0x08E2, 0x08E2], [0x115F, 0x1160], [0x17B4, 0x17B5], [0x180B, 0x180F], [0x200B, 0x200F], [0x2028, 0x202E], [0x2060, 0x2064], [0x2066, 0x206F], [0x3164, 0x3164], [0xFE00, 0xFE0F], [0xFEFF, 0xFEFF], [0xFFA0, 0xFFA0], [0xFFF9, 0xFFFB], [0x110BD, 0x110BD], [0x110CD, 0x110CD], [0x13430, 0x13438], [0x1BCA0, 0x1BCA3], [0x1D173, 0x1D17A], [0xE0001, 0xE0001], [0xE0020, 0xE007F], [0xE0100, 0xE01EF],
];

function hidden(code) {
  if (code < 0x20 || (code >= 0x7f && code < 0xa0) || (code >= 0xd800 && code < 0xe000)) return true;
  return INVISIBLE.some(([low, high]) => code >= low && code <= high);
}

function escape(code) {
  if (code === 0x0a) return "\\n";
  if (code === 0x09) return "\\t";
  if (code === 0x0d) return "\\r";
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, "0")}`;
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, "0")}`;
  return `\\U${code.toString(16).padStart(8, "0")}`;
}

const PLAIN = /^[\x20-\x7e]*$/;

export function printable(value, multiline = true) {
  const text = String(value);
  if (PLAIN.test(text)) return text;
  let shown = "";
  for (let i = 0; i < text.length; ) {
    const code = text.codePointAt(i);
    i += code > 0xffff ? 2 : 1;
    if (multiline && (code === 0x0a || code === 0x09)) shown += String.fromCodePoint(code);
    else if (multiline && code === 0x0d) continue;
    else shown += hidden(code) ? escape(code) : String.fromCodePoint(code);
  }
  return shown;
}
