/* What sticks out or is cut on the dashboard at the page's width, by kind (test_dashboard).
 * Evaluated in the page by Playwright: an arrow function of no argument returning
 * {page, cards, values, cut, wrapped, separators}, each a list of descriptions (empty: fine).
 */
() => {
  const visible = (el) => el.getClientRects().length > 0;
  const name = (el) => el.dataset.testid || el.className || el.tagName;
  const text = (el) => el.textContent.trim();
  // the line boxes of an element's text (one per line, however many inline pieces)
  const lines = (el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0).sort((a, b) => a.top - b.top);
    const out = [];
    for (const r of rects) {
      const last = out[out.length - 1];
      if (last && r.top < last.bottom - 1) {
        last.bottom = Math.max(last.bottom, r.bottom);
        last.left = Math.min(last.left, r.left);
        last.right = Math.max(last.right, r.right);
      } else {
        out.push({ top: r.top, bottom: r.bottom, left: r.left, right: r.right });
      }
    }
    return out;
  };
  const root = document.documentElement;
  const problems = { page: [], cards: [], values: [], cut: [], wrapped: [], separators: [] };
  if (root.scrollWidth > root.clientWidth) problems.page.push(`${root.scrollWidth} > ${root.clientWidth}`);
  // nothing sticks out of its card (a table scrolls inside its own .table-box: not counted)
  for (const card of document.querySelectorAll(".card, .kpi")) {
    if (!visible(card) || card.matches(".table-box")) continue;
    if (card.scrollWidth > card.clientWidth) problems.cards.push(`${name(card)}: ${card.scrollWidth} > ${card.clientWidth}`);
  }
  // every headline figure's text lies inside its card's padding box
  for (const value of document.querySelectorAll(".kpi-value")) {
    if (!visible(value)) continue;
    const card = value.closest(".kpi").getBoundingClientRect();
    for (const line of lines(value)) {
      if (line.left < card.left || line.right > card.right) {
        problems.values.push(`${text(value)}: ${Math.round(line.left)}-${Math.round(line.right)} in a card ${Math.round(card.left)}-${Math.round(card.right)}`);
      }
    }
  }
  // labels and notes read whole: nothing cut off with an ellipsis
  for (const el of document.querySelectorAll(".kpi-label, .kpi-sub, .kpi-group-title, .acct-link")) {
    if (visible(el) && el.scrollWidth > el.clientWidth) problems.cut.push(`${text(el)}: ${el.scrollWidth} > ${el.clientWidth}`);
  }
  // the top bar's items and the list's title each on one line
  for (const el of document.querySelectorAll(".brand span, .run-info > :not(.sep), #sign-out, #list-title")) {
    if (visible(el) && lines(el).length > 1) problems.wrapped.push(`${text(el)}: ${lines(el).length} lines`);
  }
  // a separator stands between two items on its own line, never alone at a line's end
  for (const sep of document.querySelectorAll(".run-info .sep")) {
    if (!visible(sep)) continue;
    const top = (el) => Math.round(lines(el)[0].top);
    const [before, after] = [sep.previousElementSibling, sep.nextElementSibling];
    if (top(before) !== top(sep) || top(after) !== top(sep)) {
      problems.separators.push(`between "${text(before)}" (${top(before)}) and "${text(after)}" (${top(after)}) at ${top(sep)}`);
    }
  }
  return problems;
}
