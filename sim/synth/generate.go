package synth

import (
	"math"
)

// Channel layout of every head's q and k rows (see the package comment).
const (
	chSink       = 0
	chHeavy      = 1
	chLate       = 2
	chSlow       = 3 // and 4
	chRecency    = 5 // pairs up to 5+2·recencyPairs
	recencyPairs = 12

	structuredChannels = chRecency + 2*recencyPairs
)

// Generator constants, all documented in the package comment.
const (
	sinkTokens     = 4
	sinkFalloff    = 0.8
	jitterStd      = 0.25
	switchRamp     = 8
	valueRank      = 4
	valueLowRank   = 0.6 // share of a value's variance in the low-rank part
	sinkValueScale = 0.2
	openVocab      = 50265 // OPT's tokenizer ids are 0..50264
	eosToken       = 2     // </s>
	// Ids 0..3 are <s>, <pad>, </s> and <unk>.
	firstOrdinaryToken = 4
)

// slowOmega makes cos(ω·Δ) fall monotonically from 1 to 0 over the whole context.
func (o Options) slowOmega() float64 {
	return math.Pi / (2 * float64(o.context()))
}

// headModel is one head's behaviour, fixed by the synthetic model (seed, preset, layer,
// head) and shared by all its samples.
type headModel struct {
	temperature         float64
	sink, sinkDecay     float64
	recency, width      float64
	omega               [recencyPairs]float64
	slow                float64
	heavy, heavyDensity float64
	late, lateDensity   float64
	noise               float64
	queryCorr, keyCorr  float64
	valueCorr           float64
}

func newHeadModel(modelKey uint64, layer, head int) headModel {
	s := newStream(mix(modelKey, tagModelHead, uint64(layer), uint64(head)))
	var m headModel
	switch u := s.uniform(0, 1); {
	case u < 0.15: // diffuse, near-uniform head
		m.temperature = s.uniform(0.15, 0.35)
	case u >= 0.85: // peaked head
		m.temperature = s.uniform(1.6, 2.4)
	default:
		m.temperature = s.uniform(0.8, 1.25)
	}
	if s.uniform(0, 1) < 0.1 { // a head without a sink
		m.sink = s.uniform(0, 0.5)
	} else {
		m.sink = s.uniform(3, 11)
	}
	m.sink *= min(1, 0.4+0.3*float64(layer)) // sinks form after the first layers
	m.sinkDecay = s.uniform(0.3, 0.7)
	m.recency = s.uniform(2, 7)
	m.width = s.logUniform(1, 64)
	// Stratified quantiles of a half-Cauchy spectrum of scale 1/width, cut at π (the
	// highest frequency integer positions can carry): Σ cos(ω_r·Δ)/R then approximates
	// exp(−Δ/width).
	top := 2 / math.Pi * math.Atan(math.Pi*m.width)
	for r := range m.omega {
		u := top * (float64(r) + s.uniform(0, 1)) / recencyPairs
		m.omega[r] = math.Tan(u*math.Pi/2) / m.width
	}
	m.slow = s.uniform(0, 1.5)
	m.heavyDensity = s.logUniform(0.005, 0.06)
	m.heavy = s.uniform(1, 4)
	m.lateDensity = s.uniform(0.005, 0.03)
	m.late = s.uniform(0, 4)
	m.noise = s.uniform(0.3, 1.5)
	m.queryCorr = s.uniform(0.7, 0.98)
	m.keyCorr = s.uniform(0.3, 0.9)
	m.valueCorr = s.uniform(0.5, 0.95)
	return m
}

// headSample is one head of one sample: its model and the key of its sample streams.
type headSample struct {
	model     *headModel
	key       uint64 // mixes sample, model, layer and head
	salience  uint64 // the sample's key, for the salience shared by all heads
	prompt    int
	switchAt  int
	slowOmega float64
}

// member reports whether position j belongs to a token set of the given density: half
// the density comes from the sample's salience (shared by all heads, which then agree on
// the most salient tokens), half from the head's own draw. It returns the token's weight,
// uniform in [0.5, 1), or 0.
func (hs *headSample) member(j int, density float64, sharedTag, headTag uint64) float64 {
	if unit(mix(hs.salience, sharedTag, uint64(j))) >= density/2 &&
		unit(mix(hs.key, headTag, uint64(j))) >= density/2 {
		return 0
	}
	return 0.5 + 0.5*unit(mix(hs.key, tagWeight, headTag, uint64(j)))
}

// heavyWeight is u_j: the weight of a persistent heavy hitter, or 0.
func (hs *headSample) heavyWeight(j int) float64 {
	if j < sinkTokens {
		return 0
	}
	return hs.member(j, hs.model.heavyDensity, tagHeavySalience, tagHeavyHead)
}

// lateWeight is w_j: the weight of a prompt token that matters only after the switch,
// or 0. Heavy hitters are never late tokens.
func (hs *headSample) lateWeight(j int) float64 {
	if j < sinkTokens || j >= min(hs.switchAt, hs.prompt) || hs.heavyWeight(j) > 0 {
		return 0
	}
	return hs.member(j, hs.model.lateDensity, tagLateSalience, tagLateHead)
}

// sinkWeight is σ_j: 1 for token 0, β·0.8^(j−1) for tokens 1–3, then 0.
func (hs *headSample) sinkWeight(j int) float64 {
	if j == 0 {
		return 1
	}
	if j < sinkTokens {
		return hs.model.sinkDecay * math.Pow(sinkFalloff, float64(j-1))
	}
	return 0
}

// lateRamp is g(t): how much query t has picked up the late direction.
func (hs *headSample) lateRamp(t int) float64 {
	return min(1, max(0, float64(t-hs.switchAt+1)/switchRamp))
}

// rotor walks cos θ and sin θ for θ = ω·t + φ(t), t = 0, 1, …, by rotation, with no
// trigonometry per step. φ is a random walk with steps atan(diffusion·z): rotating by
// (1, diffusion·z) and renormalizing. Renormalizing also stops rounding drift.
type rotor struct{ cos, sin, stepCos, stepSin, diffusion float64 }

func newRotor(omega, diffusion float64) rotor {
	return rotor{cos: 1, stepCos: math.Cos(omega), stepSin: math.Sin(omega), diffusion: diffusion}
}

func (r *rotor) step(s *stream) {
	c, sn := r.cos*r.stepCos-r.sin*r.stepSin, r.sin*r.stepCos+r.cos*r.stepSin
	if r.diffusion > 0 {
		d := r.diffusion * float64(s.normal())
		c, sn = c-d*sn, sn+d*c
	}
	norm := 1 / math.Sqrt(c*c+sn*sn)
	r.cos, r.sin = c*norm, sn*norm
}

// positional holds the rotors of the slow and recency channels, and the stream of the
// recency phases' random walks. Queries and keys of a head replay the same walks.
type positional struct {
	rotors [1 + recencyPairs]rotor
	walk   stream
}

func (hs *headSample) newPositional() positional {
	m := hs.model
	p := positional{walk: newStream(mix(hs.key, tagPhase))}
	p.rotors[0] = newRotor(hs.slowOmega, 0)
	diffusion := math.Sqrt(1 / (2 * m.width))
	for r, omega := range m.omega {
		p.rotors[1+r] = newRotor(omega, diffusion)
	}
	return p
}

// write stores the position channels, the slow pair scaled by slow and the recency
// pairs by recency, then advances one position.
func (p *positional) write(row []float32, slow, recency float64) {
	row[chSlow] = float32(slow * p.rotors[0].cos)
	row[chSlow+1] = float32(slow * p.rotors[0].sin)
	for r := range recencyPairs {
		row[chRecency+2*r] = float32(recency * p.rotors[1+r].cos)
		row[chRecency+2*r+1] = float32(recency * p.rotors[1+r].sin)
	}
	for i := range p.rotors {
		p.rotors[i].step(&p.walk)
	}
}

// autoregressive is a vector of unit-variance AR(1) processes: x ← ρ·x + √(1−ρ²)·z.
type autoregressive struct {
	x, z        []float32
	corr, innov float32
}

func newAutoregressive(s *stream, n int, corr float64) autoregressive {
	a := autoregressive{
		x:     make([]float32, n),
		z:     make([]float32, n),
		corr:  float32(corr),
		innov: float32(math.Sqrt(1 - corr*corr)),
	}
	for i := range a.x {
		a.x[i] = s.normal()
	}
	return a
}

// writeNext stores scale·x into dst and then advances x one step.
func (a *autoregressive) writeNext(s *stream, dst []float32, scale float32) {
	s.normals(a.z)
	for i, x := range a.x {
		dst[i] = scale * x
		a.x[i] = a.corr*x + a.innov*a.z[i]
	}
}

// jitter is a query's multiplier m_t = max(0, 1 + 0.25·z); the clamp acts only when
// z < −4.
func jitter(s *stream) float64 { return max(0, 1+jitterStd*float64(s.normal())) }

// fillQueries writes one head's queries, [tokens][headDim].
func (hs *headSample) fillQueries(out []float32, tokens, headDim int) {
	m := hs.model
	s := newStream(mix(hs.key, tagQuery))
	content := newAutoregressive(&s, headDim-structuredChannels, m.queryCorr)
	contentScale := float32(m.temperature * m.noise / math.Sqrt(float64(headDim-structuredChannels)))
	pos := hs.newPositional()
	tau := m.temperature
	for t := range tokens {
		row := out[t*headDim : (t+1)*headDim]
		row[chSink] = float32(tau * m.sink * jitter(&s))
		row[chHeavy] = float32(tau * m.heavy * jitter(&s))
		row[chLate] = float32(tau * m.late * hs.lateRamp(t) * jitter(&s))
		pos.write(row, tau*m.slow, tau*m.recency/recencyPairs)
		content.writeNext(&s, row[structuredChannels:], contentScale)
	}
}

// fillKeys writes one head's keys, [tokens][headDim].
func (hs *headSample) fillKeys(out []float32, tokens, headDim int) {
	s := newStream(mix(hs.key, tagKey))
	content := newAutoregressive(&s, headDim-structuredChannels, hs.model.keyCorr)
	pos := hs.newPositional()
	for j := range tokens {
		row := out[j*headDim : (j+1)*headDim]
		row[chSink] = float32(hs.sinkWeight(j))
		row[chHeavy] = float32(hs.heavyWeight(j))
		row[chLate] = float32(hs.lateWeight(j))
		pos.write(row, 1, 1)
		content.writeNext(&s, row[structuredChannels:], 1)
	}
}

// fillValues writes one head's values, [tokens][headDim]: a low-rank part along the
// head's basis, with coefficients that drift from token to token, plus noise.
func (hs *headSample) fillValues(out []float32, tokens, headDim int, basisKey uint64) {
	bs := newStream(basisKey)
	basis := make([]float32, valueRank*headDim)
	for i := range basis {
		basis[i] = bs.normal()
	}
	s := newStream(mix(hs.key, tagValue))
	coef := newAutoregressive(&s, valueRank, hs.model.valueCorr)
	c := make([]float32, valueRank)
	lowRank := float32(math.Sqrt(valueLowRank / valueRank))
	noise := float32(math.Sqrt(1 - valueLowRank))
	for j := range tokens {
		row := out[j*headDim : (j+1)*headDim]
		coef.writeNext(&s, c, lowRank)
		s.normals(row)
		for d := range row {
			row[d] *= noise
		}
		for r, cr := range c {
			for d, b := range basis[r*headDim : (r+1)*headDim] {
				row[d] += cr * b
			}
		}
		if j < sinkTokens {
			for d := range row {
				row[d] *= sinkValueScale
			}
		}
	}
}
