// Transcript lines play the recording from their start; the line being heard is highlighted.
document.addEventListener("DOMContentLoaded", () => {
  const player = document.getElementById("player");
  if (!player) return;
  const lines = Array.from(document.querySelectorAll("tr.line[data-start]"));
  for (const line of lines) {
    line.classList.add("playable");
    line.title = "Play from here";
    line.addEventListener("click", () => {
      player.currentTime = parseFloat(line.dataset.start);
      player.play();
    });
  }
  player.addEventListener("timeupdate", () => {
    let current = null;
    for (const line of lines) {
      if (parseFloat(line.dataset.start) <= player.currentTime + 0.05) current = line;
    }
    for (const line of lines) line.classList.toggle("playing", line === current);
  });
});
