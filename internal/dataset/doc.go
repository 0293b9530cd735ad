// Package dataset reads the summarization datasets that capture and validate run
// over, and builds each sample's prompt from a template.
//
// # Data
//
// The dataset is XSUM-style JSONL: one JSON object per line, holding the document
// and its reference summary as strings, by default under "document" and "summary"
// (XSUM's own names; CNN/DailyMail uses "article" and "highlights"), and optionally
// an id ("id"). Blank lines are skipped. A line that is not a JSON object, or lacks
// the document or summary field, is an error naming the file and the line.
//
// # Prompt
//
// The default template, DefaultTemplate, is the summarization prompt of the H2O and
// AUV evaluations:
//
//	###
//	Article: {document}
//
//	Summarize the above article in 1 sentence.
//
// H2O's summarization runs (which the AUV paper's XSUM, CNN/DailyMail and Newsroom
// numbers follow) feed the requests that HELM generates for these datasets, and HELM
// frames each article exactly so: "###\nArticle: " before it, a blank line after it,
// then "Summarize the above article in N sentence(s).\n" (1 for XSUM, 3 for
// CNN/DailyMail), the model's summary following on the next line. kvsim uses it
// zero-shot: HELM's five demonstrations would make every prompt six articles long,
// beyond OPT's 2048 positions on CNN/DailyMail, and with them most of the cache would
// hold other articles. Another template is any text with one "{document}"; to feed
// request files that already hold complete prompts (H2O's xsum.jsonl keeps them in
// "article"), use the template "{document}".
//
// A prompt is tokenized as transformers tokenizes it for OPT, with "</s>" (id 2)
// prepended. When it has more than the maximum prompt tokens, the document is cut
// at the end (at a character boundary, to the longest prefix that fits) and the
// template is kept whole, so the instruction always reaches the model.
package dataset
