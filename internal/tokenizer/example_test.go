package tokenizer_test

import (
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/kvsim/kvsim/internal/tokenizer"
)

// A tiny tokenizer trained, written in Hugging Face's format and loaded back, as a
// test that needs an OPT-style checkpoint directory would do.
func Example() {
	vocab, merges := tokenizer.TrainTiny(strings.Repeat("the cat sat on the mat. ", 10), 300)
	dir, err := os.MkdirTemp("", "tokenizer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := tokenizer.Write(dir, vocab, merges); err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		log.Fatal(err)
	}

	ids := tok.EncodeWithBOS("the cat sat on a mat")
	fmt.Println(ids)
	var toks []string
	for _, id := range ids {
		toks = append(toks, tok.Token(id))
	}
	fmt.Printf("%q\n", toks)
	text, err := tok.Decode(ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", text)
	// Output:
	// [2 262 268 271 270 36 101 269]
	// ["</s>" "the" "Ġcat" "Ġsat" "Ġon" "Ġ" "a" "Ġmat"]
	// "</s>the cat sat on a mat"
}
