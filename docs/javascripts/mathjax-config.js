// MathJax 3 configuration for pymdownx.arithmatex (generic mode). Loaded before the MathJax
// component, which is served from this site (assets/mathjax/), never from another host.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
