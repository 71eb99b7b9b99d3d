// Loads an attempt's raw output (and its turns) the first time its row is opened; the text is set as
// text, never as markup.
document.addEventListener("toggle", async (event) => {
  const details = event.target;
  if (!(details instanceof HTMLDetailsElement) || !details.open || !details.dataset.src || details.dataset.loaded) {
    return;
  }
  details.dataset.loaded = "1";
  const pre = details.querySelector("pre");
  try {
    const response = await fetch(details.dataset.src);
    const body = await response.json();
    let text = body.error || body.raw_output || "(empty output)";
    if (body.turns) {
      text += "\n\nturns:\n" + JSON.stringify(body.turns, null, 2);
    }
    pre.textContent = text;
  } catch (error) {
    pre.textContent = "could not load the output: " + error;
  }
}, true);
