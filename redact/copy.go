package redact

import "reflect"

// Copy returns a deep copy of v in which f has replaced every string: struct
// fields (exported ones; unexported fields and opaque values such as
// time.Time are copied as they are), slice, array and map elements, map
// keys, and whatever pointers and interfaces hold. v is not modified.
//
// A printer applies it to a whole value it is about to render (a summary,
// an event, a preview) with Terminal or String, so that a field added later
// cannot be forgotten. v must not contain cycles.
func Copy[T any](v T, f func(string) string) T {
	src := reflect.ValueOf(&v).Elem()
	dst := reflect.New(src.Type()).Elem()
	copyValue(dst, src, f)
	return dst.Interface().(T)
}

// copyAny is Copy for a value whose type is only known at run time.
func copyAny(v any, f func(string) string) any {
	if v == nil {
		return nil
	}
	src := reflect.ValueOf(v)
	dst := reflect.New(src.Type()).Elem()
	copyValue(dst, src, f)
	return dst.Interface()
}

func copyValue(dst, src reflect.Value, f func(string) string) {
	switch src.Kind() {
	case reflect.String:
		dst.SetString(f(src.String()))
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		n := reflect.New(src.Type().Elem())
		copyValue(n.Elem(), src.Elem(), f)
		dst.Set(n)
	case reflect.Interface:
		if src.IsNil() {
			return
		}
		if err, ok := src.Interface().(error); ok && src.Type().Implements(errorType) {
			// An error's text is what a printer shows; its chain is what a
			// caller branches on. Keep both: the copy says f(text) and
			// unwraps to the original.
			dst.Set(reflect.ValueOf(error(&copiedError{msg: f(err.Error()), err: err})))
			return
		}
		e := src.Elem()
		n := reflect.New(e.Type()).Elem()
		copyValue(n, e, f)
		dst.Set(n)
	case reflect.Struct:
		dst.Set(src)
		for i := 0; i < src.NumField(); i++ {
			if df := dst.Field(i); df.CanSet() {
				copyValue(df, src.Field(i), f)
			}
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		if !holdsStrings(src.Type().Elem()) {
			dst.Set(reflect.AppendSlice(reflect.MakeSlice(src.Type(), 0, src.Len()), src))
			return
		}
		n := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := 0; i < src.Len(); i++ {
			copyValue(n.Index(i), src.Index(i), f)
		}
		dst.Set(n)
	case reflect.Array:
		for i := 0; i < src.Len(); i++ {
			copyValue(dst.Index(i), src.Index(i), f)
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		n := reflect.MakeMapWithSize(src.Type(), src.Len())
		it := src.MapRange()
		for it.Next() {
			k := reflect.New(src.Type().Key()).Elem()
			copyValue(k, it.Key(), f)
			v := reflect.New(src.Type().Elem()).Elem()
			copyValue(v, it.Value(), f)
			n.SetMapIndex(k, v)
		}
		dst.Set(n)
	default:
		dst.Set(src)
	}
}

// holdsStrings reports whether a value of type t can hold a string that
// copyValue would rewrite; a slice of anything else is copied in one go.
func holdsStrings(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}

var errorType = reflect.TypeFor[error]()

// copiedError is an error whose text went through Copy's function; errors.Is
// and errors.As still see the original.
type copiedError struct {
	msg string
	err error
}

func (e *copiedError) Error() string { return e.msg }
func (e *copiedError) Unwrap() error { return e.err }
