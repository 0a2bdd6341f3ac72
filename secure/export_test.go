package secure

// CheapArgon makes KeyFromPassphrase fast for tests and returns the
// function that restores the real parameters.
func CheapArgon() func() {
	t, m := argonTime, argonMemory
	argonTime, argonMemory = 1, 64
	return func() { argonTime, argonMemory = t, m }
}
