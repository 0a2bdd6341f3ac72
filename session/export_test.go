package session

// Wakes and Passes count how often waiters were woken and how many passes
// the session's loop made, for tests that check a blocked call does not
// spin.
func Wakes(s *Session) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wakes
}

func Passes(s *Session) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.passes
}
